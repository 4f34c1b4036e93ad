"""Resume without replay: time from calling fit() on a checkpoint at step N to the first resumed
forward pass, for small and large N, on the built-in corpus with bert-tiny (MLM).

    python scripts/bench_resume.py                     # N = 10, 1,000, 100,000, 10,000,000
    python scripts/bench_resume.py --steps 10 100000

Each checkpoint is written by llmtrain's own writer (save_checkpoint) with the position a run
at step N would have (epoch and batch within it); weights and optimizer state are those of a
fresh model, which costs the same to load at any N. Also reported: the examples drawn from the
dataset before that first forward (the batch itself: nothing is replayed), and, for contrast,
what replaying N steps' batches through the DataLoader would take at the measured draw rate.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from llmtrain.config import (
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    ObjectiveName,
    TokenizerConfig,
    TrainerConfig,
)
from llmtrain.console import Console, quiet_libraries
from llmtrain.data import corpus
from llmtrain.data.packing import PackedDataset
from llmtrain.models import build_model
from llmtrain.objectives import build_objective
from llmtrain.rundir import RunDir
from llmtrain.train.checkpoint import rng_state, save_checkpoint
from llmtrain.train.contract import Objective
from llmtrain.train.evaluator import Evaluator
from llmtrain.train.job import Job
from llmtrain.train.loop import fit
from llmtrain.train.optim import Horizon, build_optimizer, build_scheduler
from llmtrain.train.sampler import make_loader
from llmtrain.train.state import Progress, TrainState


class Counted(torch.utils.data.Dataset):
    def __init__(self, dataset) -> None:
        self.dataset, self.drawn = dataset, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        self.drawn += 1
        return self.dataset[i]


class FirstForward(Objective):
    """The objective, noting when the first training forward begins and what was drawn by then."""

    def __init__(self, objective, data: Counted) -> None:
        self.objective, self.data = objective, data
        self.collate, self.targets = objective.collate, objective.targets
        self.at: float | None = None
        self.drawn_by_then = 0

    def loss(self, model, batch):
        if model.training and self.at is None:
            self.at, self.drawn_by_then = time.perf_counter(), self.data.drawn
        return self.objective.loss(model, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="*", default=[10, 1_000, 100_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_libraries()

    cache = Path(os.environ.get("LLMTRAIN_CACHE", Path.home() / ".cache" / "llmtrain"))
    plan, tokenizer = corpus.plan(
        DataConfig(cache_dir=str(cache)), TokenizerConfig(), ModelConfig(), 42
    )
    corpus.run(plan, None)
    blocks = PackedDataset(corpus.splits(plan)["train"], 128)
    objective = build_objective(ObjectiveConfig(name=ObjectiveName.mlm), tokenizer)
    base = dict(batch_size=32, block_size=128, warmup_steps=0, log_every=1, eval_every=0)
    base.update(save_every=0, eval_batches=1, keep_last=0)
    per_epoch = len(blocks) // base["batch_size"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.steps:
            times, drawn = [], 0
            for r in range(args.repeats):
                run = RunDir(Path(tmp) / f"n{n}-{r}")
                torch.manual_seed(0)
                model = build_model(ModelConfig(), ObjectiveName.mlm, tokenizer)
                cfg = TrainerConfig(max_steps=n + 1, **base)
                optimizer = build_optimizer(model, cfg, "cpu")
                scheduler = build_scheduler(optimizer, cfg, Horizon(n + 1, 0))
                progress = Progress(step=n, epoch=n // per_epoch, batch_in_epoch=n % per_epoch)
                state = {"state": TrainState(progress).to_dict(), "config": {}}
                save_checkpoint(run, n, model, optimizer, scheduler, state, [rng_state()])
                data = Counted(blocks)
                probe = FirstForward(objective, data)
                model = build_model(ModelConfig(), ObjectiveName.mlm, tokenizer)
                t0 = time.perf_counter()
                accelerator = Accelerator(cpu=True)
                job = Job(cfg, accelerator, run, Console(enabled=False), {}, n + 1)
                evaluator = Evaluator({"validation": blocks}, probe, cfg, accelerator)
                fit(job, model, probe, data, evaluator)
                times.append(probe.at - t0)
                drawn = probe.drawn_by_then
            rows.append({"step": n, "epoch": n // per_epoch, "seconds": min(times), "drawn": drawn})

    # what replaying would cost: batches drawn through the DataLoader per second
    loader = make_loader(
        blocks, objective.collate, batch_size=32, seed=42, epoch=0, rank=0, world=1, shuffle=True
    )
    t0, k = time.perf_counter(), 0
    for _ in loader:
        k += 1
        if k == 200:
            break
    per_batch = (time.perf_counter() - t0) / k
    for row in rows:
        row["replay_seconds"] = row["step"] * per_batch
    print(json.dumps({"blocks": len(blocks), "batches_per_epoch": per_epoch, "rows": rows}))
    print(
        f"\n{len(blocks):,} blocks of 128 tokens, batch 32 ({per_epoch} steps an epoch); "
        f"best of {args.repeats}\n"
    )
    print(
        "| resume at step | epoch | to first resumed forward | examples drawn by then "
        "| replaying instead would take |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['step']:,} | {row['epoch']:,} | {row['seconds']:.2f} s | {row['drawn']} "
            f"| {row['replay_seconds']:,.1f} s |"
        )


if __name__ == "__main__":
    main()
