"""The cost of data.packing=document against concat: training tokens/s and padding.

    python scripts/bench_packing.py                 # bert-tiny MLM and gpt2-tiny CLM, 3 repeats
    python scripts/bench_packing.py --steps 5 --repeats 1

The built-in corpus (stdlib docstrings), blocks of 128, batch 32, fp32, AdamW; each measurement
is `--steps` training steps (forward, backward, optimizer step) after 3 warm-up steps, concat
and document alternating within each repeat. Padding: both layouts pack without any (document
packing keeps concat's blocks and masks attention); the table also gives the padding a layout
without block-diagonal attention would need (one document per block, cut at block_size, the
rest padded), computed from the corpus's document lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from llmtrain.config import (
    DataConfig,
    Family,
    ModelConfig,
    ObjectiveConfig,
    ObjectiveName,
    Packing,
    TokenizerConfig,
    TrainerConfig,
)
from llmtrain.console import quiet_libraries
from llmtrain.data.packing import packed_dataset, tokenize
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.models import build_model
from llmtrain.objectives import build_objective
from llmtrain.train.optim import build_optimizer
from llmtrain.train.sampler import make_loader

BLOCK, BATCH, WARMUP = 128, 32, 3
WORKLOADS = {
    "mlm-bert-tiny": (Family.bert, ObjectiveName.mlm),
    "clm-gpt2-tiny": (Family.gpt2, ObjectiveName.clm),
}


def tokens_per_s(model, objective, data, steps: int) -> float:
    optimizer = build_optimizer(model, TrainerConfig(), "cpu")
    loader = make_loader(
        data, objective.collate, batch_size=BATCH, seed=0, epoch=0, rank=0, world=1, shuffle=True
    )
    batches = iter(loader)
    model.train()
    for i in range(WARMUP + steps):
        if i == WARMUP:
            t0 = time.perf_counter()
        loss, n = objective.loss(model, next(batches))
        (loss / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * BATCH * BLOCK / (time.perf_counter() - t0)


def fallback_padding(lengths: np.ndarray) -> float:
    """Share of token slots that are padding with one document (piece) per block."""
    slots = np.ceil(lengths / BLOCK) * BLOCK
    return float(1 - lengths.sum() / slots.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_libraries()
    cache = Path(os.environ.get("LLMTRAIN_CACHE", Path.home() / ".cache" / "llmtrain"))
    corpus = load_corpus(DataConfig(cache_dir=str(cache)), seed=42)["train"]
    report = {}
    for name, (family, objective_name) in WORKLOADS.items():
        tokenizer = build_tokenizer(TokenizerConfig(), family, corpus, cache, max_length=512)
        lengths = np.array([len(x) for x in tokenize(corpus, tokenizer, cache)["input_ids"]])
        objective = build_objective(ObjectiveConfig(name=objective_name), tokenizer)
        speeds = {p: [] for p in Packing}
        for _ in range(args.repeats):
            for packing in Packing:
                data = packed_dataset(corpus, tokenizer, BLOCK, cache, "training", packing)
                torch.manual_seed(0)
                model = build_model(ModelConfig(family=family), objective_name, tokenizer)
                speeds[packing].append(tokens_per_s(model, objective, data, args.steps))
        docs = packed_dataset(corpus, tokenizer, BLOCK, cache, "training", Packing.document)
        report[name] = {
            "documents": len(lengths),
            "mean_document_tokens": float(lengths.mean()),
            "segments_per_block": float((np.asarray(docs.positions) == 0).sum() / len(docs)),
            "concat_tokens_per_s": statistics.median(speeds[Packing.concat]),
            "document_tokens_per_s": statistics.median(speeds[Packing.document]),
            "fallback_padding": fallback_padding(lengths),
        }
    print(json.dumps(report, indent=2))
    print(f"\nblocks of {BLOCK}, batch {BATCH}, median of {args.repeats} x {args.steps} steps\n")
    print(
        "| workload | concat tokens/s | document tokens/s | document / concat | padding "
        "(concat, document) | padding without block-diagonal attention | segments a block |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in report.items():
        ratio = r["document_tokens_per_s"] / r["concat_tokens_per_s"]
        print(
            f"| {name} | {r['concat_tokens_per_s']:,.0f} | {r['document_tokens_per_s']:,.0f} "
            f"| {ratio:.2f}× | 0 %, 0 % | {100 * r['fallback_padding']:.0f} % "
            f"| {r['segments_per_block']:.1f} |"
        )


if __name__ == "__main__":
    main()
