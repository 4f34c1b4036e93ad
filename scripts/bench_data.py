"""Preparing pretraining text: llmtrain against the tokenizer's own speed and a nanoGPT-style
`datasets.map` + memmap, side by side on the same text and tokenizer.

    python scripts/bench_data.py          # 0.2, 2 and 10 GB (~4 h on 2 cores, 3 of them nanogpt's)
    python scripts/bench_data.py --sizes 0.2 2 --out outputs/bench_data.json
    python scripts/bench_data.py --sizes 0.2 --contenders tokenizer --vocab

The text: paragraphs of 2-12 lines drawn at random (seeded) from tinyshakespeare
(../shared/data/tinyshakespeare/input.txt), one .txt file per size. The tokenizer: the byte-level
BPE llmtrain trains for objective=clm (8,192 tokens), trained once on the default
tokenizer.train_sample. Each contender runs in its own process, its process tree's RSS sampled
every 0.1 s:

- tokenizer: `encode_batch_fast` on batches of about 1 MB of paragraphs, its own threads on all
  cores; its rate counts encode time only (reading excluded): the ceiling.
- llmtrain: `llmtrain.data.corpus.run` with data.num_proc=null (all cores): reading, hold-out,
  tokenising and writing the shards, from nothing.
- stream: `llmtrain.data.stream.StreamedBlocks` (data.streaming=true) over the same documents
  in one process: tokenising and packing 1,024-token blocks as a training loader would.
- nanogpt: `load_dataset("text", sample_by="paragraph")`, `.map(tokenize, num_proc=cores)`, then
  the ids written into one uint16 memmap in 1,024 batches, as nanoGPT's openwebtext/prepare.py.

`--vocab` also trains llmtrain's tokenizers on growing samples (tokenizer.train_sample) of
real text — prose at hand (2.6 MB) and the installed Python sources (200 MB) — and reports the
share of the largest sample's vocabulary each holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
CONTENDERS = ("tokenizer", "llmtrain", "nanogpt", "stream")


def make_text(path: Path, gigabytes: float) -> Path:
    """Seeded paragraphs of random lines, written once per size."""
    if path.exists():
        return path
    lines = [ln for ln in SHAKESPEARE.read_text().splitlines() if ln.strip()]
    rng, target, written = random.Random(0), int(gigabytes * 1e9), 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        while written < target:
            block = "\n\n".join(
                "\n".join(rng.choices(lines, k=rng.randint(2, 12))) for _ in range(10_000)
            )
            written += f.write(block + "\n\n")
    tmp.rename(path)
    return path


def _data_cfg(text: Path, cache: Path):
    from llmtrain.config import DataConfig, Source

    return DataConfig(source=Source.text_files, train_files=[str(text)], cache_dir=str(cache))


def _gpt2():
    """The model whose tokenizer every contender uses: byte-level BPE, as for objective=clm."""
    from llmtrain.config import Family, ModelConfig

    return ModelConfig(family=Family.gpt2, max_position_embeddings=1024)


def tokenizer_dir(text: Path, work: Path) -> Path:
    """llmtrain's clm tokenizer for this text, saved where every contender loads it."""
    target = work / "tokenizer"
    if not (target / "tokenizer.json").exists():
        from llmtrain.config import TokenizerConfig
        from llmtrain.data import corpus

        _, tokenizer = corpus.plan(
            _data_cfg(text, work / "tok-cache"), TokenizerConfig(), _gpt2(), 0
        )
        tokenizer.save_pretrained(str(target))
    return target


def run_tokenizer(text: Path, tok: Path, work: Path) -> dict:
    from tokenizers import Tokenizer

    from llmtrain.data.records import plan_units, read_documents

    tokenizer = Tokenizer.from_file(str(tok / "tokenizer.json"))
    encoding, tokens, batch, size = 0.0, 0, [], 0
    for unit in plan_units([text], 1 << 40):
        for doc in read_documents(unit):
            batch.append(doc)
            size += len(doc)
            if size >= 1 << 20:
                t0 = time.perf_counter()
                tokens += sum(len(e.ids) for e in tokenizer.encode_batch_fast(batch))
                encoding += time.perf_counter() - t0
                batch, size = [], 0
    t0 = time.perf_counter()
    tokens += sum(len(e.ids) for e in tokenizer.encode_batch_fast(batch))
    return {"seconds": encoding + time.perf_counter() - t0, "tokens": tokens}


def run_llmtrain(text: Path, tok: Path, work: Path) -> dict:
    from transformers import AutoTokenizer

    from llmtrain.data import corpus

    tokenizer = AutoTokenizer.from_pretrained(str(tok))
    plan = corpus.plan_for(_data_cfg(text, work / "cache"), tokenizer, seed=0)
    t0 = time.perf_counter()
    corpus.run(plan, None)
    seconds = time.perf_counter() - t0
    splits = corpus.splits(plan)
    return {"seconds": seconds, "tokens": sum(s.n_tokens for s in splits.values())}


def run_stream(text: Path, tok: Path, work: Path) -> dict:
    from transformers import AutoTokenizer

    from llmtrain.data import corpus, stream_sources
    from llmtrain.data.stream import StreamedBlocks

    tokenizer = AutoTokenizer.from_pretrained(str(tok))
    cfg = _data_cfg(text, work / "cache")
    source = stream_sources.open_stream(cfg, 0)
    blocks = StreamedBlocks(source, corpus.settings(cfg, tokenizer, 0), 1024)
    t0 = time.perf_counter()
    n = sum(1 for _ in blocks.examples(0, 0, 1, 0, 1))
    return {"seconds": time.perf_counter() - t0, "tokens": n * 1024}


def run_nanogpt(text: Path, tok: Path, work: Path) -> dict:
    import datasets
    import numpy as np
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tok))
    eos = tokenizer.eos_token_id
    t0 = time.perf_counter()
    ds = datasets.load_dataset(
        "text",
        data_files=[str(text)],
        sample_by="paragraph",
        cache_dir=str(work / "hf"),
        split="train",
    )

    def process(batch):
        ids = [[*x, eos] for x in tokenizer(batch["text"])["input_ids"]]
        return {"ids": ids, "len": [len(x) for x in ids]}

    tokenized = ds.map(process, batched=True, remove_columns=["text"], num_proc=os.cpu_count())
    total = int(np.sum(tokenized["len"], dtype=np.uint64))
    arr = np.memmap(work / "train.bin", dtype=np.uint16, mode="w+", shape=(total,))
    index = 0
    for i in range(1024):
        shard = tokenized.shard(num_shards=1024, index=i, contiguous=True).with_format("numpy")
        batch = np.concatenate(shard["ids"]) if len(shard) else np.zeros(0, np.uint16)
        arr[index : index + len(batch)] = batch
        index += len(batch)
    arr.flush()
    return {"seconds": time.perf_counter() - t0, "tokens": total}


def vocabulary_stability(work: Path) -> list[dict]:
    """New tokenizers (8,192 tokens, as pretrain trains them) learnt from growing samples of
    real text (the bench text repeats one small file, so it cannot say this), each compared
    with the one learnt from the largest: the share of its vocabulary they hold too.

    - prose: tinyshakespeare and the stdlib docstrings interleaved by paragraph (2.6 MB),
      a tenth, a quarter, a half and all of it, BPE and WordPiece;
    - code: the Python sources installed beside llmtrain (its dependencies, 200 MB), samples
      of 25, 50, 100 (the default tokenizer.train_sample) and 200 MB, BPE.
    """
    from itertools import chain, zip_longest

    from llmtrain.config import DataConfig, Family
    from llmtrain.data import sources

    docs = list(sources.load_corpus(DataConfig(cache_dir=str(work / "stdlib")), 0)["train"]["text"])
    plays = SHAKESPEARE.read_text().split("\n\n")
    prose = [t for t in chain.from_iterable(zip_longest(docs, plays)) if t and t.strip()]
    text = work / "prose.txt"
    text.write_text("\n\n".join(prose) + "\n")
    size = text.stat().st_size
    rows = []
    for family in (Family.gpt2, Family.bert):
        budgets = [int(share * size) for share in (0.1, 0.25, 0.5, 1.0)]
        rows += _vocab_rows("prose", text, family, budgets, work)
    code = _python_sources(work / "code.txt", 200 * 10**6)
    unseen = _python_sources(work / "code-held-out.txt", 10 * 10**6, after=200 * 10**6)
    budgets = [n * 10**6 for n in (25, 50, 100, 200)]
    return rows + _vocab_rows("code", code, Family.gpt2, budgets, work, unseen.read_text())


def _vocab_rows(
    name: str, text: Path, family, budgets: list[int], work: Path, unseen: str | None = None
) -> list[dict]:
    """One row a sample size; with `unseen` text, also its characters per token there."""
    from llmtrain.config import ModelConfig, TokenizerConfig
    from llmtrain.data import corpus

    vocabularies = {}
    for budget in budgets:
        cache = work / f"vocab-{name}-{family.value}-{budget}"
        t0 = time.perf_counter()
        sample = TokenizerConfig(train_sample=budget)
        _, tok = corpus.plan(_data_cfg(text, cache), sample, ModelConfig(family=family), 0)
        seconds = time.perf_counter() - t0
        per_token = None
        if unseen is not None:
            docs = unseen.split("\n\n")
            n = sum(len(i) for i in tok(docs, add_special_tokens=False)["input_ids"])
            per_token = round(len(unseen) / n, 4)
        vocabularies[budget] = (set(tok.get_vocab()), seconds, per_token)
        shutil.rmtree(cache, ignore_errors=True)
    largest = vocabularies[max(budgets)][0]
    return [
        {
            "text": name,
            "family": family.value,
            "sample_mb": round(budget / 1e6, 2),
            "shared_with_largest": round(len(vocabulary & largest) / len(largest), 3),
            "chars_per_token_unseen": per_token,
            "train_seconds": round(seconds, 1),
        }
        for budget, (vocabulary, seconds, per_token) in vocabularies.items()
    ]


def _python_sources(path: Path, size: int, after: int = 0) -> Path:
    """The .py files of the running environment's site-packages, in path order, each a
    document: `size` bytes of them, from the first file past `after` bytes."""
    import sysconfig

    if path.exists():
        return path
    seen = written = 0
    with open(path, "w") as out:
        for source in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
            text = source.read_text(errors="replace").strip()
            if text and seen >= after and written < size:
                written += out.write(text + "\n\n")
            seen += len(text) + 2
    return path
    written = 0
    with open(path, "w") as out:
        for source in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
            text = source.read_text(errors="replace").strip()
            if text and written < size:
                written += out.write(text + "\n\n")
    return path


def measure(contender: str, text: Path, tok: Path, work: Path) -> dict:
    """One contender in a fresh process; its tree's peak RSS sampled every 0.1 s."""
    import psutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "result.json"
    command = [sys.executable, __file__, "--run", contender, str(text), str(tok), str(work)]
    process = subprocess.Popen(command, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    if process.returncode:
        raise SystemExit(f"{contender} failed ({process.returncode})")
    result = json.loads(out.read_text())
    size = text.stat().st_size
    shutil.rmtree(work, ignore_errors=True)
    return {
        "contender": contender,
        "gigabytes": round(size / 1e9, 2),
        "seconds": round(result["seconds"], 1),
        "mb_per_s": round(size / 1e6 / result["seconds"], 2),
        "tokens_per_s": round(result["tokens"] / result["seconds"]),
        "tokens": result["tokens"],
        "peak_rss_mb": round(peak / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.2, 2, 10], help="GB of text")
    parser.add_argument("--work", type=Path, default=Path("/tmp/llmtrain-bench-data"))
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_data.json")
    parser.add_argument(
        "--vocab",
        action="store_true",
        help="also compare tokenizers learnt from shares of the real text at hand",
    )
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # a contender's own process
        contender, text, tok, work = args.run
        runner = globals()[f"run_{contender}"]
        result = runner(Path(text), Path(tok), Path(work))
        (Path(work) / "result.json").write_text(json.dumps(result))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    texts = {size: make_text(args.work / f"text-{size:g}GB.txt", size) for size in args.sizes}
    tok = tokenizer_dir(texts[min(args.sizes)], args.work)
    rows = []
    for text in texts.values():
        for contender in args.contenders:
            rows.append(measure(contender, text, tok, args.work / "run"))
            print(json.dumps(rows[-1]), flush=True)
    vocab = vocabulary_stability(args.work) if args.vocab else []
    for row in vocab:
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "cores": len(os.sched_getaffinity(0))}
    args.out.write_text(json.dumps({**meta, "rows": rows, "vocabulary": vocab}, indent=1) + "\n")
    print("| GB | contender | s | MB/s | tokens/s | peak RSS MB |\n|--|--|--|--|--|--|")
    for r in rows:
        print(
            f"| {r['gigabytes']} | {r['contender']} | {r['seconds']} | {r['mb_per_s']} | "
            f"{r['tokens_per_s']:,} | {r['peak_rss_mb']:,} |"
        )


if __name__ == "__main__":
    main()
