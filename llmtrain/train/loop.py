"""fit(): the one training loop.

Each step draws `grad_accum` micro-batches and takes one optimizer step (llmtrain.train.step:
token-exact accumulation, clipping, skipping non-finite updates); then the plan is redone (a
budget), the schedule moves, and at their intervals the step is logged, evaluated and
checkpointed. Losses are read back to the host only at log intervals. The loop knows no model
family and no task: it gets a model, datasets, an objective (llmtrain.train.contract) and an
Evaluator.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from llmtrain.config import TrainerConfig
from llmtrain.errors import TrainingStopped
from llmtrain.rundir import RunDir
from llmtrain.train.budget import Plan
from llmtrain.train.contract import Batch, Objective
from llmtrain.train.distributed import sharded_model
from llmtrain.train.evaluator import Evaluation, Evaluator
from llmtrain.train.job import FitResult, Job
from llmtrain.train.loss_module import LossModule
from llmtrain.train.optim import Horizon, build_optimizer, build_scheduler
from llmtrain.train.sampler import make_loader
from llmtrain.train.signals import StopRequest
from llmtrain.train.sink import Sink
from llmtrain.train.state import Progress, TrainState, restore, save
from llmtrain.train.step import optimizer_step


def fit(
    job: Job,
    model: torch.nn.Module,
    objective: Objective,
    train_set: Dataset,
    evaluator: Evaluator,
    lengths: torch.Tensor | None = None,
) -> FitResult:
    """Train for `job.steps` (or until early stopping, or for as long as `trainer.budget`
    allows), continuing from a checkpoint where `trainer.resume` finds one. `lengths`: the
    examples' lengths, for trainer.group_by_length."""
    started = time.perf_counter()  # a budget counts from here
    cfg, accelerator = job.trainer, job.accelerator
    optimizer = build_optimizer(model, cfg, accelerator.device.type)
    horizon = Horizon(job.steps, cfg.warmup_steps, cfg.warmup_ratio)
    scheduler = build_scheduler(optimizer, cfg, horizon)
    module, optimizer = accelerator.prepare(LossModule(model, objective.loss), optimizer)
    # Sharded weights exist only inside the wrapper's forward: evaluate through it, every
    # process taking the same number of forwards.
    lockstep = module if sharded_model(accelerator) else None
    state = restore(job, model, optimizer, scheduler, objective.n_parts)
    progress = state.progress
    plan = Plan(cfg.budget, horizon, state, started, evaluator.closing_evals, accelerator)
    sink = Sink(job.run, accelerator, job.console)

    def evaluate() -> Evaluation:  # every evaluation: logged, tracked, timed for the budget
        t0 = time.perf_counter()
        result = evaluator.evaluate(model, lockstep)
        sink.eval(progress.step, result.metrics)
        evaluator.track(result, state.best, progress.step, model, job.run)
        state.budget.eval_seconds = time.perf_counter() - t0
        return result

    last = evaluate() if progress.step == 0 else None  # the start of every curve
    batches = _batches(train_set, objective, cfg, accelerator, progress, lengths)
    first_step_seconds = 0.0
    job.console.start(plan.steps, progress.step)
    module.train()
    with StopRequest() as stop:
        try:
            while progress.step < plan.steps:
                t0 = time.perf_counter()
                micro = [_to(next(batches), accelerator.device) for _ in range(cfg.grad_accum)]
                sums, grad_norm, finite = optimizer_step(
                    module, micro, objective, accelerator, optimizer, cfg.max_grad_norm
                )
                now = time.perf_counter()
                state.record_step(sums, finite, now - t0)
                first_step_seconds = first_step_seconds or now - t0
                plan.after_step(progress.step, t0, now, state.budget)  # before the schedule
                if finite and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                _stop_if_diverging(cfg, progress, job.run)
                step, steps = progress.step, plan.steps
                if step % cfg.log_every == 0 or step == steps:
                    lr = scheduler.get_last_lr()[0]
                    sink.step(
                        step, steps, *_train_row(state, objective, accelerator, lr, grad_norm)
                    )
                else:
                    sink.step(step, steps)
                if (cfg.eval_every and step % cfg.eval_every == 0) or step == steps:
                    last = evaluate()
                    reason = evaluator.stop_early(state.best, step)
                    if reason is not None:
                        job.console.line(reason)
                        plan.stop(step)  # the end-of-training checkpoint below follows
                interrupted = stop.requested(accelerator)
                if _save_due(cfg, step, plan, interrupted):
                    path = save(job, state, model, optimizer, scheduler, plan)
                if interrupted and step < plan.steps:
                    raise _stopped(stop.signum, step, path, job.run)
        finally:
            job.console.stop()
    if last is None:  # resumed from the final checkpoint: nothing left to train
        last = evaluate()
    counters = (progress.step, progress.skipped_steps, progress.tokens, progress.train_seconds)
    return FitResult(
        *counters, first_step_seconds, last, evaluator.best, state.best.step, plan.budget
    )


def _batches(train_set, objective, cfg, accelerator, progress: Progress, lengths) -> Iterator:
    """Micro-batches forever, epoch after epoch, from `progress`'s position (kept up to date)."""
    while True:
        loader = make_loader(
            train_set,
            objective.collate,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            epoch=progress.epoch,
            rank=accelerator.process_index,
            world=accelerator.num_processes,
            shuffle=True,
            start_batch=progress.batch_in_epoch,
            num_workers=cfg.num_workers,
            pin_memory=accelerator.device.type == "cuda",
            lengths=lengths if cfg.group_by_length else None,
        )
        for batch in loader:
            progress.batch_in_epoch += 1
            yield batch
        progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0


def _train_row(state: TrainState, objective, accelerator, lr: float, grad_norm) -> tuple:
    """A log step's train metrics (over the window, all processes) and the run's counters."""
    totals = state.window.flush(accelerator)
    progress = state.progress
    progress.tokens += int(totals["tokens"])
    row = {
        "loss": totals["loss_sum"] / max(totals["targets"], 1),
        **objective.report(totals["parts"]),
        "lr": lr,
        "grad_norm": float(grad_norm),
        "tokens_per_s": totals["tokens"] / max(totals["seconds"], 1e-9),
    }
    counters = {
        "tokens": progress.tokens,
        "epoch": progress.epoch,
        "skipped_steps": progress.skipped_steps,
    }
    return row, counters


def _save_due(cfg: TrainerConfig, step: int, plan: Plan, interrupted: bool) -> bool:
    """Checkpoint now: every save_every steps, at the end, when stopped by a signal, and
    after a budget run's first step (to time a write)."""
    periodic = bool(cfg.save_every) and step % cfg.save_every == 0
    return periodic or step == plan.steps or interrupted or plan.times_a_write(step)


def _stop_if_diverging(cfg: TrainerConfig, progress: Progress, run: RunDir) -> None:
    if progress.bad_in_a_row >= cfg.max_bad_steps:
        good = run.list_checkpoints()
        raise TrainingStopped(
            f"stopped at step {progress.step}: {progress.bad_in_a_row} non-finite losses or "
            f"gradients in a row (trainer.max_bad_steps); the last good checkpoint is "
            f"{good[-1] if good else 'none (no checkpoint was written yet)'}"
        )


def _stopped(signum: int, step: int, path: Path, run: RunDir) -> TrainingStopped:
    name = signal.Signals(signum).name
    return TrainingStopped(
        f"stopped by {name} at step {step}; checkpoint {path}. "
        f"Run the same command with hydra.run.dir={run.path} to continue",
        exit_code=128 + signum,
    )


def _to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
