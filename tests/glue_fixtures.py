"""Tiny files in GLUE's own distributed layout, one directory per task (written by the tests).

Each mimics the real file: CoLA's headerless four columns, MRPC's byte-order mark and header,
MNLI's matched/mismatched dev files, test files without labels, and text with stray quotes.
The label follows a word in the text, so a model can learn it.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["good", "bad"]


def _sentence(i: int) -> str:
    return f'the "film" number {i} is {WORDS[i % 2]} and it\'s {["fun", "dull"][i % 2]} .'


def _write(path: Path, header: str | None, rows: list[list[str]], bom: bool = False) -> None:
    lines = ([header] if header else []) + ["\t".join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def write_glue(
    root: Path,
    n_train: int = 48,
    n_dev: int = 16,
    only: tuple[str, ...] | None = None,
    glue_names: bool = False,
) -> Path:
    """Write every GLUE task's (or `only` these tasks') train/dev/test files under root/<task>/
    (with `glue_names`, under GLUE's own directory names: root/CoLA/, root/SST-2/, …) and
    return root."""
    from llmtrain.tasks.glue import GLUE

    tasks = {
        "cola": _cola,
        "sst2": _sst2,
        "mrpc": _mrpc,
        "qqp": _qqp,
        "stsb": _stsb,
        "mnli": _mnli,
        "qnli": _qnli,
        "rte": _rte,
        "wnli": _wnli,
    }
    for name, writer in tasks.items():
        if only is not None and name not in only:
            continue
        d = root / (GLUE[name].directory if glue_names else name)
        d.mkdir(parents=True, exist_ok=True)
        writer(d, n_train, n_dev)
    return root


def _splits(d: Path, n: int, m: int, header: str | None, row, test_header: str, test_row, **kw):
    """train.tsv and dev.tsv from row(i), test.tsv from test_row(i)."""
    _write(d / "train.tsv", header, [row(i) for i in range(n)], **kw)
    _write(d / "dev.tsv", header, [row(i) for i in range(n, n + m)], **kw)
    _write(d / "test.tsv", test_header, [test_row(i) for i in range(m)], **kw)


def _single_test_row(i: int) -> list[str]:
    return [str(i), _sentence(i)]


def _cola(d, n, m):
    def row(i):
        return ["gj04", str(1 - i % 2), "" if i % 2 == 0 else "*", _sentence(i)]

    _splits(d, n, m, None, row, "index\tsentence", _single_test_row)


def _sst2(d, n, m):
    def row(i):
        return [_sentence(i) + " ", str(1 - i % 2)]

    _splits(d, n, m, "sentence\tlabel", row, "index\tsentence", _single_test_row)


def _mrpc(d, n, m):
    def row(i):
        return [str(1 - i % 2), str(i), str(i + 1), _sentence(i), _sentence(i + 2)]

    def test_row(i):
        return [str(i), *row(i)[1:]]

    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    test_header = "index\t#1 ID\t#2 ID\t#1 String\t#2 String"
    _splits(d, n, m, header, row, test_header, test_row, bom=True)


def _qqp(d, n, m):
    def row(i):
        return [str(i), str(2 * i), str(2 * i + 1), _sentence(i), _sentence(i + 2), str(1 - i % 2)]

    def test_row(i):
        return [str(i), _sentence(i), _sentence(i + 1)]

    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    _splits(d, n, m, header, row, "id\tquestion1\tquestion2", test_row)


def _stsb(d, n, m):
    def row(i):
        meta = [str(i), "main-captions", "MSRvid", "2012test", str(i), "none", "none"]
        return [*meta, _sentence(i), _sentence(i + 1), f"{(i % 2) * 4 + 0.5:.3f}"]

    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    _splits(d, n, m, header + "\tscore", row, header, lambda i: row(i)[:-1])


def _mnli(d, n, m):
    labels = ["entailment", "neutral", "contradiction"]
    parses = "sentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse"
    base = f"index\tpromptID\tpairID\tgenre\t{parses}\tsentence1\tsentence2"

    def row(i):
        trees = ["( x )", "( y )", "(ROOT x)", "(ROOT y)"]
        return [str(i), str(i), f"{i}e", "fiction", *trees, _sentence(i), _sentence(i + 3)]

    _write(
        d / "train.tsv",
        base + "\tlabel1\tgold_label",
        [row(i) + [labels[i % 3]] * 2 for i in range(n)],
    )
    dev_header = base + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
    for name, start in (("dev_matched.tsv", n), ("dev_mismatched.tsv", n + m)):
        _write(
            d / name, dev_header, [row(i) + [labels[i % 3]] * 6 for i in range(start, start + m)]
        )
    _write(d / "test_matched.tsv", base, [row(i) for i in range(m)])


def _pair_task(d, n, m, labels, first="sentence1", second="sentence2"):
    def row(i):
        return [str(i), _sentence(i), _sentence(i + 1), labels[i % 2]]

    header = f"index\t{first}\t{second}"
    _splits(d, n, m, header + "\tlabel", row, header, lambda i: row(i)[:-1])


def _qnli(d, n, m):
    _pair_task(d, n, m, ["entailment", "not_entailment"], "question", "sentence")


def _rte(d, n, m):
    _pair_task(d, n, m, ["entailment", "not_entailment"])


def _wnli(d, n, m):
    _pair_task(d, n, m, ["0", "1"])


def load_task(tmp_path: Path, **kw):
    """A classification task's data, read for training (after its config checks)."""
    from llmtrain import tasks
    from llmtrain.config import ModelConfig
    from llmtrain.tasks import classification
    from llmtrain.tasks.classification import ClassificationConfig

    cfg = ClassificationConfig(**kw)
    classification.check(cfg, ModelConfig())
    return tasks.load(cfg, tmp_path, training=True).data


def tsv_dir(tmp_path: Path, name: str, content: bytes) -> Path:
    """tmp_path/name/ with `content` as its train.tsv and a one-row dev.tsv."""
    d = tmp_path / name
    d.mkdir()
    (d / "train.tsv").write_bytes(content)
    (d / "dev.tsv").write_bytes(b"sentence\tlabel\nfine .\t1\n")
    return d
