"""The cost of data.packing=document against concat: training tokens/s and padding.

    python scripts/bench_packing.py                 # bert-tiny MLM and gpt2-tiny CLM, 3 repeats
    python scripts/bench_packing.py --steps 5 --repeats 1

The built-in corpus (stdlib docstrings), blocks of 128, batch 32, fp32, AdamW; each measurement
is `--steps` training steps (forward, backward, optimizer step) after 3 warm-up steps, the
layouts alternating within each repeat: concat; document with block-diagonal attention (the
same blocks, no padding); document padded (one document piece per block: the layout for models
that take no 4D mask). Tokens/s counts real tokens only, not padding.
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
    TokenizerConfig,
    TrainerConfig,
)
from llmtrain.console import quiet_libraries
from llmtrain.data import corpus
from llmtrain.data.packing import Layout, PackedDataset, pad_id
from llmtrain.models import build_model
from llmtrain.objectives import build_objective
from llmtrain.train.optim import build_optimizer
from llmtrain.train.sampler import make_loader

BLOCK, BATCH, WARMUP = 128, 32, 3
WORKLOADS = {
    "mlm-bert-tiny": (Family.bert, ObjectiveName.mlm),
    "clm-gpt2-tiny": (Family.gpt2, ObjectiveName.clm),
}
LAYOUTS = {"concat": Layout.concat, "document": Layout.document, "document-padded": Layout.padded}


def tokens_per_s(model, objective, data, steps: int) -> float:
    optimizer = build_optimizer(model, TrainerConfig(), "cpu")
    loader = make_loader(
        data, objective.collate, batch_size=BATCH, seed=0, epoch=0, rank=0, world=1, shuffle=True
    )
    batches = iter(loader)
    model.train()
    tokens = 0
    for i in range(WARMUP + steps):
        if i == WARMUP:
            t0 = time.perf_counter()
        batch = next(batches)
        if i >= WARMUP:
            mask = batch.get("attention_mask")
            tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        loss, n = objective.loss(model, batch)
        (loss / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_libraries()
    cache = Path(os.environ.get("LLMTRAIN_CACHE", Path.home() / ".cache" / "llmtrain"))
    report = {}
    for name, (family, objective_name) in WORKLOADS.items():
        data = DataConfig(cache_dir=str(cache))
        plan, tokenizer = corpus.plan(data, TokenizerConfig(), ModelConfig(family=family), 42)
        corpus.run(plan, None)
        train = corpus.splits(plan)["train"]
        lengths = np.diff(np.append(train.doc_starts(), train.n_tokens))
        objective = build_objective(ObjectiveConfig(name=objective_name), tokenizer)
        layouts = {k: PackedDataset(train, BLOCK, v, pad_id(tokenizer)) for k, v in LAYOUTS.items()}
        speeds = {k: [] for k in LAYOUTS}
        for _ in range(args.repeats):
            for layout, data in layouts.items():
                torch.manual_seed(0)
                model = build_model(ModelConfig(family=family), objective_name, tokenizer)
                speeds[layout].append(tokens_per_s(model, objective, data, args.steps))
        docs, padded = layouts["document"], layouts["document-padded"]
        report[name] = {
            "documents": len(lengths),
            "mean_document_tokens": float(lengths.mean()),
            "segments_per_block": float(
                sum(int((docs[i]["position_ids"] == 0).sum()) for i in range(len(docs))) / len(docs)
            ),
            "padded_padding": 1 - padded.num_tokens / (len(padded) * BLOCK),
            **{f"{k}_tokens_per_s": statistics.median(v) for k, v in speeds.items()},
        }
    print(json.dumps(report, indent=2))
    print(f"\nblocks of {BLOCK}, batch {BATCH}, median of {args.repeats} x {args.steps} steps\n")
    print("| workload | layout | tokens/s (real tokens) | vs concat | padding |")
    print("|---|---|---|---|---|")
    for name, r in report.items():
        for layout in LAYOUTS:
            speed = r[f"{layout}_tokens_per_s"]
            padding = r["padded_padding"] if layout == "document-padded" else 0.0
            print(
                f"| {name} | {layout} | {speed:,.0f} | {speed / r['concat_tokens_per_s']:.2f}× "
                f"| {100 * padding:.0f} % |"
            )


if __name__ == "__main__":
    main()
