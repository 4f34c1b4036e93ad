"""What fit() is given and what it gives back: the Job (the run it trains in), the checks of the
trainer settings and the length of training (each run once, by the command, before fit), and
the FitResult.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from accelerate import Accelerator

from llmtrain.config import TrainerConfig, resume_free_keys
from llmtrain.console import Console
from llmtrain.errors import ConfigError, DataError
from llmtrain.rundir import RunDir
from llmtrain.train.budget import PROVISIONAL_STEPS, Budget, parse_budget
from llmtrain.train.evaluator import Evaluation


@dataclass(frozen=True)
class Job:
    """The run fit() trains in: its trainer settings, processes, run directory and console, the
    resolved config (saved with checkpoints; a resumption compares it), and the steps planned
    (`total_steps`, which the command also shows in its header)."""

    trainer: TrainerConfig
    accelerator: Accelerator
    run: RunDir
    console: Console
    config: dict[str, Any]
    steps: int
    # keys a resumption may change (llmtrain.config.resume_free_keys; a task's: tasks')
    resume_free: frozenset[str] = field(default_factory=resume_free_keys)


@dataclass(frozen=True)
class FitResult:
    steps: int
    skipped_steps: int
    tokens: int
    train_seconds: float
    first_step_seconds: float  # compiling (trainer.compile) and warm-up show here
    last_eval: Evaluation
    best_eval: Evaluation | None  # with a Select: this attempt's best evaluation
    best_step: int | None
    budget: Budget | None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.train_seconds, 1e-9)

    def summary(self) -> dict[str, Any]:
        """summary.json's counters; a budget run's budget, the steps it allowed and the time
        used (call it last, after final/ is written: the budget counts that too)."""
        out = {
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "tokens": self.tokens,
            "train_seconds": round(self.train_seconds, 3),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "first_step_seconds": round(self.first_step_seconds, 3),
        }
        if self.budget is not None:
            out["budget_seconds"] = self.budget.seconds
            out["budget_steps"] = self.steps
            out["budget_used_seconds"] = round(self.budget.used(), 3)
        return out


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


def total_steps(cfg: TrainerConfig, n_examples: int | None, world: int) -> int:
    """Optimizer steps the run will take: max_steps, or `epochs` passes over the data (a budget
    run: a provisional number until its first step is timed). `n_examples=None`: a stream, of
    unknown length (which refuses epochs before this)."""
    per_epoch = None if n_examples is None else (n_examples // world) // cfg.batch_size
    if per_epoch == 0:  # micro-batches per epoch per process
        raise DataError(
            f"the training split has {n_examples} examples: fewer than one batch "
            f"(trainer.batch_size={cfg.batch_size} x {world} processes)"
        )
    if cfg.budget is not None:
        return PROVISIONAL_STEPS
    if cfg.epochs is None or per_epoch is None:
        steps = cfg.max_steps
    else:
        steps = math.ceil(cfg.epochs * per_epoch / cfg.grad_accum)
    _check_warmup(cfg, steps)
    return steps
