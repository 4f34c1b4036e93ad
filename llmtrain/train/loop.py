"""fit(): the one training loop.

Gradient accumulation is token-exact: every micro-batch backpropagates the *sum* of its token
losses, and once the step's micro-batches are done the gradients are divided by the number of
targets over all micro-batches and processes. Losses are read back to the host only at log
intervals. The loop knows no model family and no task: it gets a model, datasets and an
objective (see llmtrain.objectives for the contract).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import Dataset

from llmtrain.config import Precision, TrainerConfig
from llmtrain.console import Console
from llmtrain.errors import ConfigError, DataError
from llmtrain.objectives import Objective
from llmtrain.rundir import RunDir
from llmtrain.train.checkpoint import save_checkpoint
from llmtrain.train.evaluate import Evaluation, evaluate
from llmtrain.train.optim import build_optimizer, build_scheduler
from llmtrain.train.sampler import make_loader


class LossModule(torch.nn.Module):
    """The model and the objective's loss in one forward, so DDP/FSDP wrap the whole computation
    and the loss may call the model's parts (e.g. an MLM head on masked positions only)."""

    def __init__(self, model: torch.nn.Module, loss: Any) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss(self.model, batch)


@dataclass
class Selection:
    """Keep the model with the best `metric` in <run>/best/ (written by `export`)."""

    metric: str
    export: Callable[[Path], None]
    greater_is_better: bool = True

    def better(self, new: float, old: float | None) -> bool:
        return old is None or (new > old if self.greater_is_better else new < old)


@dataclass
class Position:
    """Where training is: optimizer steps done, and the next micro-batch to draw."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    best: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0


def check_trainer(cfg: TrainerConfig) -> None:
    """Reject settings that cannot work, naming the key."""
    positive = ["batch_size", "grad_accum", "block_size", "log_every"]
    if cfg.epochs is None:
        positive.append("max_steps")
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"trainer.{key}={getattr(cfg, key)} must be positive")
    for key in (
        "eval_every",
        "save_every",
        "warmup_steps",
        "keep_last",
        "num_workers",
        "weight_decay",
        "max_grad_norm",
    ):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"trainer.{key}={getattr(cfg, key)} must not be negative")
    if cfg.lr <= 0:
        raise ConfigError(f"trainer.lr={cfg.lr} must be positive")
    if cfg.epochs is not None and cfg.epochs <= 0:
        raise ConfigError(f"trainer.epochs={cfg.epochs} must be positive")
    if cfg.eval_batches is not None and cfg.eval_batches <= 0:
        raise ConfigError(f"trainer.eval_batches={cfg.eval_batches} must be positive or null")


def make_accelerator(cfg: TrainerConfig) -> Accelerator:
    """The Accelerator for this process; on a machine without CUDA it runs on the CPU explicitly
    (a plain Accelerator() under torchrun on CPU would let each rank train alone)."""
    on_gpu = torch.cuda.is_available()
    if cfg.precision is Precision.fp16 and not on_gpu:
        raise ConfigError("trainer.precision=fp16 needs a GPU; use bf16 on the CPU")
    return Accelerator(mixed_precision=cfg.precision.value, cpu=not on_gpu)


def total_steps(cfg: TrainerConfig, n_examples: int, world: int) -> int:
    """Optimizer steps the run will take: max_steps, or `epochs` passes over the data."""
    per_epoch = (n_examples // world) // cfg.batch_size  # micro-batches per epoch per process
    if per_epoch == 0:
        raise DataError(
            f"the training split has {n_examples} examples: fewer than one batch "
            f"(trainer.batch_size={cfg.batch_size} x {world} processes)"
        )
    steps = (
        cfg.max_steps if cfg.epochs is None else math.ceil(cfg.epochs * per_epoch / cfg.grad_accum)
    )
    if cfg.warmup_steps >= steps:
        raise ConfigError(
            f"trainer.warmup_steps={cfg.warmup_steps} is not shorter than training ({steps} steps)"
        )
    return steps


def fit(
    *,
    model: torch.nn.Module,
    objective: Objective,
    train_set: Dataset,
    eval_sets: dict[str, Dataset],
    cfg: TrainerConfig,
    accelerator: Accelerator,
    run: RunDir,
    console: Console,
    run_config: dict[str, Any],
    select: Selection | None = None,
    train_lengths: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Train to the configured number of steps (or until early stopping); returns counters, the
    last evaluation and, with `select`, the best one."""
    check_trainer(cfg)
    if cfg.early_stopping and select is None:
        raise ConfigError("trainer.early_stopping needs a task metric to watch (llmtrain finetune)")
    world = accelerator.num_processes
    steps = total_steps(cfg, len(train_set), world)
    optimizer = build_optimizer(model, cfg, accelerator.device.type)
    scheduler = build_scheduler(optimizer, cfg, steps)
    module, optimizer = accelerator.prepare(LossModule(model, objective.loss), optimizer)
    pos = Position()

    def draw():
        """Micro-batches forever, epoch after epoch, from the current position."""
        while True:
            loader = make_loader(
                train_set,
                objective.collate,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                epoch=pos.epoch,
                rank=accelerator.process_index,
                world=world,
                shuffle=True,
                start_batch=pos.batch_in_epoch,
                num_workers=cfg.num_workers,
                pin_memory=accelerator.device.type == "cuda",
                lengths=train_lengths if cfg.group_by_length else None,
            )
            for batch in loader:
                pos.batch_in_epoch += 1
                yield batch
            pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0

    best_eval: Evaluation | None = None

    def log_eval() -> Evaluation:
        nonlocal best_eval
        result = evaluate(model, objective, eval_sets, cfg, accelerator)
        run.log({"step": pos.step, "split": "eval", **result.metrics})
        console.eval(pos.step, result.metrics)
        if select is not None:
            value = result.metrics[select.metric]
            if select.better(value, pos.best):
                pos.best, pos.best_step, pos.evals_since_best, best_eval = (
                    value,
                    pos.step,
                    0,
                    result,
                )
                with run.write_dir("best") as tmp:
                    if tmp is not None:
                        select.export(tmp)
            else:
                pos.evals_since_best += 1
        return result

    last_eval = log_eval()  # the starting point, so every curve shows where it began
    batches = draw()
    window = torch.zeros(
        3, dtype=torch.float64, device=accelerator.device
    )  # loss sum, targets, tokens
    window_time = train_time = 0.0
    grad_norm = torch.zeros((), device=accelerator.device)
    console.start(steps, pos.step)
    module.train()
    try:
        while pos.step < steps:
            t0 = time.perf_counter()
            step_sums = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
            for k in range(cfg.grad_accum):
                batch = _to(next(batches), accelerator.device)
                last = k == cfg.grad_accum - 1
                with contextlib.nullcontext() if last else accelerator.no_sync(module):
                    loss_sum, n = module(batch)
                    accelerator.backward(loss_sum)
                tokens = (
                    batch["attention_mask"].sum()
                    if "attention_mask" in batch
                    else batch["input_ids"].numel()
                )
                step_sums += torch.stack(
                    [
                        loss_sum.detach().double(),
                        n.double(),
                        torch.as_tensor(tokens, dtype=torch.float64, device=step_sums.device),
                    ]
                )
            # DDP averaged the summed gradients over processes; turn that into a mean per target.
            targets = accelerator.reduce(step_sums[1].clone(), "sum")
            scale = (world / targets.clamp(min=1)).float()
            for p in module.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)
            grad_norm = accelerator.clip_grad_norm_(
                module.parameters(), cfg.max_grad_norm or math.inf
            )
            optimizer.step()
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            pos.step += 1
            window += step_sums
            elapsed = time.perf_counter() - t0
            window_time += elapsed
            train_time += elapsed

            if pos.step % cfg.log_every == 0 or pos.step == steps:
                totals = accelerator.reduce(window, "sum").tolist()
                pos.tokens += int(totals[2])
                row = {
                    "loss": totals[0] / max(totals[1], 1),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "tokens_per_s": totals[2] / max(window_time, 1e-9),
                }
                run.log(
                    {
                        "step": pos.step,
                        "split": "train",
                        **row,
                        "tokens": pos.tokens,
                        "epoch": pos.epoch,
                    }
                )
                console.step(pos.step, row)
                window.zero_()
                window_time = 0.0
            else:
                console.step(pos.step)
            if (cfg.eval_every and pos.step % cfg.eval_every == 0) or pos.step == steps:
                last_eval = log_eval()
                if cfg.early_stopping and pos.evals_since_best >= cfg.early_stopping:
                    console.line(
                        f"early stopping at step {pos.step}: no better {select.metric} in "
                        f"{cfg.early_stopping} evaluations "
                        f"(best {pos.best:.4g} at step {pos.best_step})"
                    )
                    steps = pos.step  # the end-of-training checkpoint below follows
            if (cfg.save_every and pos.step % cfg.save_every == 0) or pos.step == steps:
                state = {"position": asdict(pos), "config": run_config}
                save_checkpoint(run, pos.step, model, optimizer, scheduler, state)
                run.prune_checkpoints(cfg.keep_last)
                accelerator.wait_for_everyone()
    finally:
        console.stop()
    return {
        "steps": pos.step,
        "tokens": pos.tokens,
        "train_seconds": train_time,
        "tokens_per_s": pos.tokens / max(train_time, 1e-9),
        "eval": last_eval,
        "best": best_eval,
        "best_step": pos.best_step,
    }


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
