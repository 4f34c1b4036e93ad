"""Token classification: both file formats, sub-token alignment, truncation, bad data, and a
`task=ner` run end to end whose scores equal seqeval's on its own prediction file."""

from __future__ import annotations

import json
import string
from pathlib import Path

import datasets
import pytest
from conftest import FT_TINY, read_metrics, run_cli
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from span_fixtures import sentence, write_conll, write_tag_jsonl

from llmtrain import tasks
from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.errors import DataError
from llmtrain.metrics import tagging_metrics
from llmtrain.tasks.tagging import TaggingConfig

LONG = sentence(1) * 8  # 72 words: longer than the runs' task.max_length=32


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ner")
    write_conll(d / "train.conll", [sentence(i) for i in range(40)] + [LONG])
    write_conll(d / "dev.conll", [sentence(i) for i in range(40, 52)])
    return d


@pytest.fixture(scope="module")
def ner_run(ner_files, cache_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("ner-run") / "run"
    args = [
        "finetune",
        "task=ner",
        f"task.train_file={ner_files / 'train.conll'}",
        f"task.validation_file={ner_files / 'dev.conll'}",
        "task.max_length=32",
        *FT_TINY,
        "trainer.lr=3e-3",
        "trainer.max_steps=12",
        "trainer.batch_size=8",
        "trainer.log_every=4",
        "trainer.eval_every=6",
        "trainer.save_every=12",
    ]
    result = run_cli([*args, f"hydra.run.dir={run}"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result.stdout


def _kind(tmp_path: Path, train: Path, dev: Path, **kw):
    cfg = TaggingConfig(train_file=str(train), validation_file=str(dev), **kw)
    return tasks.load(cfg, tmp_path, training=True)


def test_conll_and_jsonl_read_alike(tmp_path):
    sentences = [sentence(i) for i in range(6)]
    conll = _kind(tmp_path, write_conll(tmp_path / "a.conll", sentences), tmp_path / "a.conll")
    jsonl = _kind(
        tmp_path,
        write_tag_jsonl(tmp_path / "a.jsonl", sentences),
        tmp_path / "a.jsonl",
        tokens_field="words",
        tags_field="labels",
    )
    for kind in (conll, jsonl):  # -DOCSTART- skipped, the tag is the last column
        assert kind.labels == ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]
        train = kind.splits["train"]
        assert len(train) == 6 and train[0]["tokens"] == [
            "John",
            "Smith",
            "lives",
            "in",
            "Paris",
            ".",
        ]
        assert [kind.labels[t] for t in train[0]["tags"]] == [t for _, t in sentences[0]]
    assert conll.splits["train"][:] == jsonl.splits["train"][:]


def test_first_sub_token_carries_the_tag_and_truncation_is_counted(tmp_path):
    words = [w for w, _ in sentence(4)]  # Olga Berg works for Initech in Rio de Janeiro .
    tokenizer = build_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=1),
        Family.bert,
        # whole words for a few, letters (also word-inside ones) for the rest
        datasets.Dataset.from_dict({"text": ["olga berg .", "x" + string.ascii_lowercase]}),
        tmp_path,
        max_length=512,
    )
    train = write_conll(tmp_path / "t.conll", [sentence(4), LONG])
    kind = _kind(tmp_path, train, train, max_length=64)
    warnings = []
    row = kind.encode(tokenizer, warnings.append)["train"][0]
    tags = [kind.labels[t] for t in kind.splits["train"][0]["tags"]]
    pieces = [tokenizer.tokenize(w) for w in words]
    assert any(len(p) > 1 for p in pieces)  # the vocabulary splits some words
    expected = [-100]
    for piece, tag in zip(pieces, tags, strict=True):
        expected += [kind.labels.index(tag)] + [-100] * (len(piece) - 1)
    assert row["labels"] == expected + [-100]
    assert row["words"] == words
    assert warnings == [
        "1 of 2 train sentences are longer than task.max_length=64 tokens and were truncated "
        "(their last words are neither trained on nor scored)",
        "1 of 2 validation sentences are longer than task.max_length=64 tokens and were "
        "truncated (their last words are neither trained on nor scored)",
    ]


def test_scheme_decides_what_an_entity_is():
    gold, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    # conlleval lets I- open an entity; strict IOB2 does not, so the prediction finds none.
    assert tagging_metrics(gold, pred, "conlleval") == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 2 / 3}
    )
    assert tagging_metrics(gold, pred, "IOB2") == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 2 / 3}
    )
    iobes = [["S-PER", "O", "B-LOC", "E-LOC"]]
    assert tagging_metrics(iobes, iobes, "IOBES")["f1"] == 1.0


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "John B-PER\nlives O\n\n"


@pytest.mark.parametrize(
    ("train", "dev", "message"),
    [
        (
            (
                "t.jsonl",
                '{"tokens": ["a", "b"], "tags": ["O", "O"]}\n'
                '{"tokens": ["a", "b", "c"], "tags": ["O", "O"]}\n',
            ),
            ("d.conll", GOOD),
            "t.jsonl:2: 3 tokens but 2 tags",
        ),
        (
            ("t.conll", GOOD),
            ("d.conll", "-DOCSTART- O\n\nJohn B-PER\nlives O\nin O\nParis B-XYZ\n"),
            "d.conll:6: tag 'B-XYZ' is not in the tag set of the training file",
        ),
        (("t.conll", "John B-PER\nlives\n"), ("d.conll", GOOD), "t.conll:2: 'lives' has no tag"),
        (
            ("t.conll", "John PER\n"),
            ("d.conll", GOOD),
            "t.conll:1: tag 'PER' does not fit task.scheme=IOB2",
        ),
        (
            ("t.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n'),
            ("d.jsonl", '{"tokens": ["a", "b"], "tags": ["O", "B-X"]}\n'),
            "d.jsonl:1: word 2: tag 'B-X' is not in the tag set",
        ),
    ],
)
def test_bad_tagging_data_names_file_and_line(tmp_path, train, dev, message):
    with pytest.raises(DataError) as error:
        _kind(tmp_path, _bad(tmp_path, *train), _bad(tmp_path, *dev))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(str(tmp_path))


def _read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    gold, pred = [], []
    for block in path.read_text().strip().split("\n\n"):
        rows = [line.split(" ") for line in block.splitlines()]
        gold.append([r[1] for r in rows])
        pred.append([r[2] for r in rows])
    return gold, pred


def test_ner_run_end_to_end(ner_run):
    run, stdout = ner_run
    assert "warning: 1 of 41 train sentences are longer than task.max_length=32" in stdout
    evals = [r for r in read_metrics(run) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 6, 12]
    assert evals[-1]["loss"] < evals[0]["loss"]  # it learns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "ner" and summary["main_metric"] == "f1"
    # The reported scores are seqeval's (strict IOB2) on the written predictions.
    gold, pred = _read_conll(run / "predictions" / "validation.conll")
    assert len(gold) == 12 and gold[0] == [t for _, t in sentence(40)]
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        expected = fn(gold, pred, mode="strict", scheme=IOB2, zero_division=0)
        assert summary[f"best_{name}"] == pytest.approx(expected, abs=1e-12), name
    words = [(g, p) for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)]
    assert summary["best_accuracy"] == pytest.approx(sum(g == p for g, p in words) / len(words))


def test_ner_final_reloads_in_a_pipeline(ner_run):
    from transformers import AutoModelForTokenClassification, pipeline

    run, _ = ner_run
    model = AutoModelForTokenClassification.from_pretrained(run / "final")
    assert list(model.config.id2label.values()) == [
        "B-LOC",
        "B-ORG",
        "B-PER",
        "I-LOC",
        "I-ORG",
        "I-PER",
        "O",
    ]
    tagged = pipeline("token-classification", model=str(run / "final"))("Mary lives in Berlin .")
    assert all(t["entity"] in model.config.label2id for t in tagged)


def test_evaluate_reproduces_the_ner_run(ner_run, ner_files, cache_dir, tmp_path):
    run, _ = ner_run
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "task=ner",
        f"task.validation_file={ner_files / 'dev.conll'}",
        "task.max_length=32",
        f"model.from_run={run}",
        "trainer.batch_size=8",
    ]
    result = run_cli([*args, f"hydra.run.dir={out}"], cache_dir)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((out / "summary.json").read_text())
    trained = json.loads((run / "summary.json").read_text())
    for key in ("f1", "precision", "recall", "accuracy", "loss"):
        assert evaluated[key] == pytest.approx(trained[f"best_{key}"]), key
    assert (out / "predictions" / "validation.conll").read_text() == (
        run / "predictions" / "validation.conll"
    ).read_text()
