"""TrainState: where training is, as checkpoints store it (trainer_state.json's "state"), and
how it is restored from a checkpoint and saved into one.

Everything a resumed run needs to continue exactly as the uninterrupted one is here: the data
position, the counters, the best model so far, the budget's record and the logging window in
progress (its sums are logged at the next log step as if nothing had happened).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmtrain.errors import ConfigError
from llmtrain.train.checkpoint import (
    changed_settings,
    find_resume,
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from llmtrain.train.distributed import gather, sharded_state

if TYPE_CHECKING:
    from accelerate import Accelerator

    from llmtrain.config import TrainerConfig
    from llmtrain.train.budget import Plan
    from llmtrain.train.job import Job


@dataclass
class Progress:
    """Optimizer steps done, the next micro-batch to draw, and the run's counters."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    tokens: int = 0
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient
    bad_in_a_row: int = 0
    train_seconds: float = 0.0


@dataclass
class Best:
    """The best evaluation so far by the selected metric (llmtrain.train.evaluator.Select)."""

    value: float | None = None
    step: int | None = None
    evals_since: int = 0  # evaluations since it, for early stopping


@dataclass
class BudgetRecord:
    """trainer.budget: the steps planned and the time used up to this state, and the end costs
    measured (the last evaluation's and checkpoint write's seconds; kept without a budget too)."""

    planned_steps: int = 0
    used_seconds: float = 0.0
    eval_seconds: float = 0.0
    save_seconds: float = 0.0


class Window:
    """The logging window in progress: the sums of the updates since the last logged step (loss
    sum, targets, tokens, then the objective's `n_parts` sums), kept on the device so they are
    read back only at log steps, and the seconds of every step in it."""

    def __init__(self, n_parts: int = 0, device: Any = "cpu", saved: dict | None = None) -> None:
        saved = saved or {}
        parts = saved.get("parts") or [0.0] * n_parts
        first = [saved.get(k, 0.0) for k in ("loss_sum", "targets", "tokens")]
        self.sums = torch.tensor(first + parts, dtype=torch.float64, device=device)
        self.seconds: float = saved.get("seconds", 0.0)

    def flush(self, accelerator: Accelerator) -> dict[str, Any]:
        """The window's totals over every process (named), and a fresh window."""
        totals = accelerator.reduce(self.sums, "sum").tolist()
        out = dict(zip(("loss_sum", "targets", "tokens"), totals[:3], strict=True))
        out.update(parts=totals[3:], seconds=self.seconds)
        self.sums.zero_()
        self.seconds = 0.0
        return out

    def state_dict(self) -> dict[str, Any]:
        loss_sum, targets, tokens, *parts = self.sums.tolist()
        return dict(
            loss_sum=loss_sum, targets=targets, tokens=tokens, parts=parts, seconds=self.seconds
        )


@dataclass
class TrainState:
    """Where training is (see the module's docstring); checkpoints store `to_dict()`."""

    progress: Progress = field(default_factory=Progress)
    best: Best = field(default_factory=Best)
    budget: BudgetRecord = field(default_factory=BudgetRecord)
    window: Window = field(default_factory=Window)

    def record_step(self, sums: torch.Tensor, finite: bool, seconds: float) -> None:
        """One optimizer step done in `seconds`: its sums join the window if it updated."""
        if finite:
            self.window.sums += sums
            self.progress.bad_in_a_row = 0
        else:
            self.progress.skipped_steps += 1
            self.progress.bad_in_a_row += 1
        self.progress.step += 1
        self.window.seconds += seconds
        self.progress.train_seconds += seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "progress": asdict(self.progress),
            "best": asdict(self.best),
            "budget": asdict(self.budget),
            "window": self.window.state_dict(),
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any], n_parts: int, device: Any) -> TrainState:
        return cls(
            Progress(**saved["progress"]),
            Best(**saved["best"]),
            BudgetRecord(**saved["budget"]),
            Window(n_parts, device, saved["window"]),
        )


def restore(job: Job, model, optimizer, scheduler, n_parts: int) -> TrainState:
    """A fresh state, or the one in the checkpoint `trainer.resume` points to (its weights,
    optimizer, schedule and generators restored too)."""
    run, cfg, accelerator = job.run, job.trainer, job.accelerator
    run.remove_scratch()
    path = find_resume(run, cfg.resume, job.console.warn)
    if path is None:
        if cfg.resume == "none" and run.list_checkpoints():
            if not cfg.overwrite:
                raise ConfigError(
                    f"{run.path} already has checkpoints: resume with trainer.resume=auto, or "
                    "start afresh there with trainer.overwrite=true"
                )
            run.clear()
        run.truncate_metrics(None)
        return TrainState(window=Window(n_parts, accelerator.device))
    rank, world = accelerator.process_index, accelerator.num_processes
    saved = load_checkpoint(path, model, optimizer, scheduler, rank, world, accelerator.scaler)
    changed = changed_settings(saved["config"], job.config, job.resume_free)
    if saved["world"] != world:
        changed = _regrouped(path, saved, cfg, world, changed)
    if changed and not cfg.allow_config_change:
        raise ConfigError(
            f"cannot resume from {path}: training settings differ: {', '.join(changed)} "
            "(trainer.allow_config_change=true resumes anyway)"
        )
    found = saved["state"] if "state" in saved else _from_position(saved["position"])
    state = TrainState.from_dict(found, n_parts, accelerator.device)
    if saved["world"] != world:  # the same examples drawn so far, in this run's micro-batches
        old = saved["config"]["trainer"]["batch_size"] * saved["world"]
        state.progress.batch_in_epoch = (
            state.progress.batch_in_epoch * old // (cfg.batch_size * world)
        )
    run.truncate_metrics(state.progress.step)
    job.console.line(f"resuming from {path} (step {state.progress.step})")
    return state


def _regrouped(
    path: Path, saved: dict[str, Any], cfg: TrainerConfig, world: int, changed: list[str]
) -> list[str]:
    """A checkpoint of another number of processes resumes when the global batch is the same
    (through trainer.grad_accum or trainer.batch_size): the data position is global, so the
    steps after it see the examples they would have seen. Those two keys may then differ."""
    old = saved["config"]["trainer"]
    before = old["batch_size"] * old["grad_accum"] * saved["world"]
    if cfg.batch_size * cfg.grad_accum * world != before:
        accum = before / (cfg.batch_size * world)
        fix = (
            f"trainer.grad_accum={int(accum)}"
            if accum >= 1 and accum == int(accum)
            else f"trainer.batch_size x trainer.grad_accum x processes = {before}"
        )
        raise ConfigError(
            f"{path} was written by {saved['world']} processes with a global batch of {before} "
            f"sequences; resume with {world} with the same global batch: {fix}"
        )
    regrouping = ("trainer.batch_size ", "trainer.grad_accum ")
    return [change for change in changed if not change.startswith(regrouping)]


def _from_position(old: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written before TrainState (its flat "position") in TrainState's form, so a
    run started with an older llmtrain resumes exactly."""
    loss_sum, targets, tokens, seconds = old["window"]
    return {
        "progress": {k: old[k] for k in Progress.__dataclass_fields__},
        "best": {
            "value": old["best"],
            "step": old["best_step"],
            "evals_since": old["evals_since_best"],
        },
        "budget": {
            "planned_steps": old["planned_steps"],
            "used_seconds": old["budget_used"],
            "eval_seconds": old["eval_seconds"],
            "save_seconds": old["save_seconds"],
        },
        "window": {
            "loss_sum": loss_sum,
            "targets": targets,
            "tokens": tokens,
            "parts": old["window_parts"],
            "seconds": seconds,
        },
    }


def save(job: Job, state: TrainState, model, optimizer, scheduler, plan: Plan) -> Path:
    """checkpoints/step-<step>/ with the state (every process calls it); old ones pruned."""
    t0 = time.perf_counter()
    plan.record(state.budget, t0)
    accelerator = job.accelerator
    path = save_checkpoint(
        job.run,
        state.progress.step,
        model,
        optimizer,
        scheduler,
        {"state": state.to_dict(), "config": job.config},
        gather(accelerator, rng_state()),
        accelerator.scaler,
        sharded=sharded_state(accelerator),
    )
    job.run.prune_checkpoints(job.trainer.keep_last)
    accelerator.wait_for_everyone()
    state.budget.save_seconds = time.perf_counter() - t0
    return path
