"""fit(): the one training loop.

The step itself (token-exact accumulation, clipping, skipping non-finite updates) is
llmtrain.train.step; this module runs steps, evaluations and checkpoints in order, resumes,
and logs. Losses are read back to the host only at log intervals. The loop knows no model
family and no task: it gets a model, datasets and an objective (see llmtrain.objectives for
the contract).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast
from torch.utils.data import Dataset

from llmtrain.config import TrainerConfig
from llmtrain.console import Console
from llmtrain.errors import ConfigError, DataError, TrainingStopped
from llmtrain.rundir import RunDir
from llmtrain.train import trackers
from llmtrain.train.budget import PROVISIONAL_STEPS, Budget, parse_budget
from llmtrain.train.checkpoint import (
    changed_settings,
    find_resume,
    full_model_state,
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from llmtrain.train.contract import Objective
from llmtrain.train.distributed import gather, sharded_model, sharded_state
from llmtrain.train.evaluate import Evaluation, evaluate
from llmtrain.train.loss_module import LossModule
from llmtrain.train.optim import Horizon, build_optimizer, build_scheduler
from llmtrain.train.sampler import make_loader
from llmtrain.train.signals import StopRequest
from llmtrain.train.step import optimizer_step


@dataclass
class Selection:
    """Keep the model with the best `metric` in <run>/best/ (written by `export(directory,
    weights)`, `weights` being the whole model's state dict)."""

    metric: str
    export: Callable[[Path, dict[str, torch.Tensor]], None]
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
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient
    bad_in_a_row: int = 0
    train_seconds: float = 0.0
    # trainer.budget: the steps planned, the time used up to this position, end costs measured
    planned_steps: int = 0
    budget_used: float = 0.0
    eval_seconds: float = 0.0
    save_seconds: float = 0.0
    # the logging window in progress: loss sum, targets, tokens, seconds
    window: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    window_parts: list[float] = field(default_factory=list)  # the objective's extra sums


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
        "keep_last",
        "num_workers",
        "weight_decay",
        "max_grad_norm",
        "max_bad_steps",
    ):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"trainer.{key}={getattr(cfg, key)} must not be negative")
    if cfg.lr <= 0:
        raise ConfigError(f"trainer.lr={cfg.lr} must be positive")
    if cfg.epochs is not None and cfg.epochs <= 0:
        raise ConfigError(f"trainer.epochs={cfg.epochs} must be positive")
    if cfg.eval_batches is not None and cfg.eval_batches <= 0:
        raise ConfigError(f"trainer.eval_batches={cfg.eval_batches} must be positive or null")
    if not 0 <= cfg.warmup_ratio < 1:
        raise ConfigError(f"trainer.warmup_ratio={cfg.warmup_ratio} must be in [0, 1)")
    if cfg.warmup_steps is not None and cfg.warmup_steps < 0:
        raise ConfigError(f"trainer.warmup_steps={cfg.warmup_steps} must not be negative")
    parse_budget(cfg.budget)
    if cfg.epochs is None and cfg.budget is None:
        _check_warmup(cfg, cfg.max_steps)


def _check_warmup(cfg: TrainerConfig, steps: int) -> None:
    """A warm-up set in steps must be shorter than training (a share of the run always is)."""
    if cfg.warmup_steps is not None and cfg.warmup_steps >= steps:
        raise ConfigError(
            f"trainer.warmup_steps={cfg.warmup_steps} is not shorter than training ({steps} "
            "steps): lower it, or leave it unset for trainer.warmup_ratio of the run"
        )


def total_steps(cfg: TrainerConfig, n_examples: int, world: int) -> int:
    """Optimizer steps the run will take: max_steps, or `epochs` passes over the data (a budget
    run: a provisional number until its first step is timed)."""
    per_epoch = (n_examples // world) // cfg.batch_size  # micro-batches per epoch per process
    if per_epoch == 0:
        raise DataError(
            f"the training split has {n_examples} examples: fewer than one batch "
            f"(trainer.batch_size={cfg.batch_size} x {world} processes)"
        )
    if cfg.budget is not None:
        return PROVISIONAL_STEPS
    steps = (
        cfg.max_steps if cfg.epochs is None else math.ceil(cfg.epochs * per_epoch / cfg.grad_accum)
    )
    _check_warmup(cfg, steps)
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
    after_eval: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    closing_evals: int = 1,
) -> dict[str, Any]:
    """Train to the configured number of steps (or until early stopping, or for as long as
    `trainer.budget` allows, with `closing_evals` evaluations left to do after fit), continuing
    from a checkpoint where `trainer.resume` finds one; returns counters, the last evaluation
    and, with `select`, the best one. `after_eval(model)` runs after every evaluation (e.g. to
    write generations); the metrics it returns join that evaluation's."""
    started = time.perf_counter()  # a budget counts from here
    check_trainer(cfg)
    if cfg.early_stopping and select is None:
        raise ConfigError("trainer.early_stopping needs a task metric to watch (llmtrain finetune)")
    world = accelerator.num_processes
    steps = total_steps(cfg, len(train_set), world)
    optimizer = build_optimizer(model, cfg, accelerator.device.type)
    horizon = Horizon(steps, cfg.warmup_steps, cfg.warmup_ratio)
    scheduler = build_scheduler(optimizer, cfg, horizon)
    module, optimizer = accelerator.prepare(LossModule(model, objective.loss), optimizer)
    # Sharded weights exist only inside the wrapper's forward: evaluate through it, every
    # process taking the same number of forwards.
    lockstep = module if sharded_model(accelerator) else None
    pos = _start(run, cfg, model, optimizer, scheduler, run_config, console, accelerator)
    budget = None
    if cfg.budget is not None:
        budget = Budget(
            parse_budget(cfg.budget),
            started,
            pos.budget_used,
            closing_evals,
            pos.step,
        )
        if pos.planned_steps:
            steps = horizon.steps = max(pos.step, pos.planned_steps)

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
        t0 = time.perf_counter()
        result = evaluate(model, objective, eval_sets, cfg, accelerator, lockstep)
        if after_eval is not None:
            result.metrics.update(after_eval(model))
        run.log({"step": pos.step, "split": "eval", **result.metrics})
        trackers.log(accelerator, pos.step, "eval", result.metrics)
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
                weights = full_model_state(model)  # every process: FSDP gathers shards
                with run.write_dir("best") as tmp:
                    if tmp is not None:
                        select.export(tmp, weights)
            else:
                pos.evals_since_best += 1
        pos.eval_seconds = time.perf_counter() - t0
        return result

    def save() -> Path:
        t0 = time.perf_counter()
        pos.window[:3] = window[:3].tolist()
        pos.window_parts = window[3:].tolist()
        if budget is not None:
            pos.budget_used, pos.planned_steps = budget.used(t0), steps
        state = {"position": asdict(pos), "config": run_config}
        rngs = gather(accelerator, rng_state())
        path = save_checkpoint(
            run,
            pos.step,
            model,
            optimizer,
            scheduler,
            state,
            rngs,
            accelerator.scaler,
            sharded=sharded_state(accelerator),
        )
        run.prune_checkpoints(cfg.keep_last)
        accelerator.wait_for_everyone()
        pos.save_seconds = time.perf_counter() - t0
        return path

    last_eval = log_eval() if pos.step == 0 else None  # the start of every curve
    batches = draw()
    # loss sum, targets, tokens, then the objective's own sums (see llmtrain.objectives)
    n_parts = getattr(objective, "n_parts", 0)
    extra = pos.window_parts or [0.0] * n_parts
    window = torch.tensor(pos.window[:3] + extra, dtype=torch.float64, device=accelerator.device)
    console.start(steps, pos.step)
    module.train()
    first_step_seconds = 0.0  # compiling (trainer.compile) and warm-up show here
    with StopRequest() as stop:
        try:
            while pos.step < steps:
                t0 = time.perf_counter()
                if budget is not None:
                    budget.step_begins(pos.step, t0)
                micro = [_to(next(batches), accelerator.device) for _ in range(cfg.grad_accum)]
                sums, grad_norm, finite = optimizer_step(
                    module, micro, objective, accelerator, optimizer, cfg.max_grad_norm, len(window)
                )
                if finite:
                    window += sums
                    pos.bad_in_a_row = 0
                else:
                    pos.skipped_steps += 1
                    pos.bad_in_a_row += 1
                pos.step += 1
                now = time.perf_counter()
                elapsed = now - t0
                first_step_seconds = first_step_seconds or elapsed
                pos.window[3] += elapsed
                pos.train_seconds += elapsed
                if budget is not None:  # re-plan before the schedule takes its next value
                    planned = budget.plan(
                        pos.step, elapsed, now, pos.eval_seconds, pos.save_seconds
                    )
                    if world > 1:  # rank 0's clock decides, so all processes stop together
                        planned = int(
                            broadcast(torch.tensor([planned], device=accelerator.device))[0]
                        )
                    steps = planned
                    if budget.measured(pos.step):
                        horizon.steps = planned
                if finite and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()

                if pos.bad_in_a_row >= cfg.max_bad_steps:
                    good = run.list_checkpoints()
                    raise TrainingStopped(
                        f"stopped at step {pos.step}: {pos.bad_in_a_row} non-finite losses or "
                        f"gradients in a row (trainer.max_bad_steps); the last good checkpoint is "
                        f"{good[-1] if good else 'none (no checkpoint was written yet)'}"
                    )
                if pos.step % cfg.log_every == 0 or pos.step == steps:
                    totals = accelerator.reduce(window, "sum").tolist()
                    pos.tokens += int(totals[2])
                    row = {
                        "loss": totals[0] / max(totals[1], 1),
                        **(objective.report(totals[3:]) if n_parts else {}),
                        "lr": scheduler.get_last_lr()[0],
                        "grad_norm": float(grad_norm),
                        "tokens_per_s": totals[2] / max(pos.window[3], 1e-9),
                    }
                    extra = {
                        "tokens": pos.tokens,
                        "epoch": pos.epoch,
                        "skipped_steps": pos.skipped_steps,
                    }
                    run.log({"step": pos.step, "split": "train", **row, **extra})
                    trackers.log(accelerator, pos.step, "train", {**row, **extra})
                    console.step(pos.step, row, total=steps)
                    window.zero_()
                    pos.window[3] = 0.0
                else:
                    console.step(pos.step, total=steps)
                if (cfg.eval_every and pos.step % cfg.eval_every == 0) or pos.step == steps:
                    last_eval = log_eval()
                    if cfg.early_stopping and pos.evals_since_best >= cfg.early_stopping:
                        console.line(
                            f"early stopping at step {pos.step}: no better {select.metric} in "
                            f"{cfg.early_stopping} evaluations "
                            f"(best {pos.best:.4g} at step {pos.best_step})"
                        )
                        steps = pos.step  # the end-of-training checkpoint below follows
                interrupted = stop.requested(accelerator)
                if (
                    (cfg.save_every and pos.step % cfg.save_every == 0)
                    or pos.step == steps
                    or interrupted
                    or (budget is not None and pos.step == budget.first_step + 1 == 1)
                ):  # (a budget run checkpoints after its first step to time a write)
                    path = save()
                if interrupted and pos.step < steps:
                    name = signal.Signals(stop.signum).name
                    raise TrainingStopped(
                        f"stopped by {name} at step {pos.step}; checkpoint {path}. "
                        f"Run the same command with hydra.run.dir={run.path} to continue",
                        exit_code=128 + stop.signum,
                    )
        finally:
            console.stop()
    if last_eval is None:  # resumed from the final checkpoint: nothing left to train
        last_eval = log_eval()
    return {
        "steps": pos.step,
        "skipped_steps": pos.skipped_steps,
        "tokens": pos.tokens,
        "train_seconds": pos.train_seconds,
        "tokens_per_s": pos.tokens / max(pos.train_seconds, 1e-9),
        "first_step_seconds": first_step_seconds,
        "eval": last_eval,
        "best": best_eval,
        "best_step": pos.best_step,
        "budget": budget,
    }


def budget_summary(budget: Budget | None, steps: int) -> dict[str, Any]:
    """summary.json's record of a budget run: the budget, the steps it allowed, the time used
    (called last, after final/ is written)."""
    if budget is None:
        return {}
    return {
        "budget_seconds": budget.seconds,
        "budget_steps": steps,
        "budget_used_seconds": round(budget.used(), 3),
    }


def _start(run, cfg, model, optimizer, scheduler, run_config, console, accelerator) -> Position:
    """A fresh position, or the one in the checkpoint `trainer.resume` points to."""
    run.remove_scratch()
    path = find_resume(run, cfg.resume, console.warn)
    if path is None:
        if cfg.resume == "none" and run.list_checkpoints():
            if not cfg.overwrite:
                raise ConfigError(
                    f"{run.path} already has checkpoints: resume with trainer.resume=auto, or "
                    "start afresh there with trainer.overwrite=true"
                )
            run.clear()
        run.truncate_metrics(None)
        return Position()
    rank, world = accelerator.process_index, accelerator.num_processes
    state = load_checkpoint(path, model, optimizer, scheduler, rank, world, accelerator.scaler)
    changed = changed_settings(state["config"], run_config)
    if changed and not cfg.allow_config_change:
        raise ConfigError(
            f"cannot resume from {path}: training settings differ: {', '.join(changed)} "
            "(trainer.allow_config_change=true resumes anyway)"
        )
    pos = Position(**state["position"])
    run.truncate_metrics(pos.step)
    console.line(f"resuming from {path} (step {pos.step})")
    return pos


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
