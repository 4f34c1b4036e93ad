"""`trainer.budget`: train for as many steps as fit in a wall-clock budget, and finish in it.

The budget counts from the start of training (data preparation, cached after a corpus's first
run, comes before, as in cramming) through the final evaluation, the final checkpoint and
`final/`. After every step the plan is
redone: steps allowed = steps done + (time left - reserve) / seconds per step, where seconds per
step is the average since this attempt's second step (the first pays one-off costs; periodic
evaluations and checkpoints are included, as they recur) and the reserve is what the end costs:
the last measured evaluation and checkpoint write (a budget run writes a checkpoint after its
first step to time one), a `final/` write no slower than a checkpoint, and a margin. When the
time left covers no more steps, the current step is the last. The learning-rate schedule spans
the planned steps (`Horizon`), its warm-up `trainer.warmup_ratio` of them (cramming sizes its
schedule to the budget too); until an average rate exists it keeps a provisional horizon.

A resumed run continues the same budget: the time each attempt used up to its last checkpoint
is stored there; work an interrupted attempt did after that checkpoint is lost and not counted.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from accelerate.utils import broadcast

from llmtrain.errors import ConfigError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from llmtrain.train.optim import Horizon
    from llmtrain.train.state import BudgetRecord, TrainState

_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")
PROVISIONAL_STEPS = 1_000_000  # the schedule's horizon before the first step is timed
MARGIN = 1.25  # the reserve is the measured end costs times this, plus a second


def parse_budget(value: str | float | None) -> float | None:
    """'20m', '1h30m', '90s', '1.5h' or a number of seconds -> seconds; None -> None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.fullmatch(text)
        if not match or not any(match.groups()):
            raise ConfigError(
                f"trainer.budget={value} is not a duration: use e.g. 20m, 1h30m, 90s or seconds"
            ) from None
        parts = zip(match.groups(), (3600, 60, 1), strict=True)
        seconds = sum(float(g) * unit for g, unit in parts if g)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"trainer.budget={value} must be a positive duration")
    return seconds


@dataclass
class Budget:
    seconds: float
    started: float  # time.perf_counter() when this attempt's training started
    used_before: float = 0.0  # what earlier attempts used, up to the checkpoint resumed from
    closing_evals: int = 1  # evaluations after the last step (fine-tuning also predicts)
    first_step: int = 0  # where this attempt started
    _mark: tuple[int, float] | None = field(default=None, repr=False)

    def used(self, now: float | None = None) -> float:
        return self.used_before + ((now or time.perf_counter()) - self.started)

    def reserve(self, eval_seconds: float, save_seconds: float) -> float:
        """Time kept for the end: the closing evaluations, the last checkpoint and final/."""
        return MARGIN * (self.closing_evals * eval_seconds + 2 * save_seconds) + 1.0

    def step_begins(self, step: int, now: float) -> None:
        """Called at the start of each step: the average rate counts from the second one."""
        if self._mark is None and step > self.first_step:
            self._mark = (step, now)

    def measured(self, step: int) -> bool:
        """Whether the rate is an average over steps after the first (else the schedule keeps
        its horizon: a first step's one-off costs would shorten the warm-up for nothing)."""
        return self._mark is not None and step > self._mark[0]

    def plan(
        self,
        step: int,
        last_step_seconds: float,
        now: float,
        eval_seconds: float,
        save_seconds: float,
    ) -> int:
        """The step the run should end at, given `step` steps done (never fewer) and the last
        evaluation's and checkpoint write's durations."""
        if not self.measured(step):
            rate = last_step_seconds  # pessimistic: the first step's one-off costs included
        else:
            rate = (now - self._mark[1]) / (step - self._mark[0])
        left = self.seconds - self.used(now) - self.reserve(eval_seconds, save_seconds)
        return step + max(0, int(left // max(rate, 1e-9)))


class Plan:
    """The steps the run takes: a fixed number, or with trainer.budget re-planned after every
    step (`after_step`), the schedule's horizon following the plan once the rate is measured.
    The loop asks only `steps`; without a budget every method but `stop` leaves it alone."""

    def __init__(
        self,
        budget: str | float | None,
        horizon: Horizon,
        state: TrainState,
        started: float,
        closing_evals: int,
        accelerator: Accelerator,
    ) -> None:
        """`horizon.steps` the steps planned; `state` where training starts (a resumed budget
        run continues its budget and keeps its plan)."""
        self.steps, self.horizon, self.accelerator = horizon.steps, horizon, accelerator
        seconds, step, record = parse_budget(budget), state.progress.step, state.budget
        self.budget = None
        if seconds is not None:
            self.budget = Budget(seconds, started, record.used_seconds, closing_evals, step)
            if record.planned_steps:
                self.steps = horizon.steps = max(step, record.planned_steps)

    def after_step(self, step: int, began: float, now: float, record: BudgetRecord) -> None:
        """Re-plan after step `step` (begun at `began`), before the schedule's next value."""
        if self.budget is None:
            return
        self.budget.step_begins(step - 1, began)
        planned = self.budget.plan(step, now - began, now, record.eval_seconds, record.save_seconds)
        if self.accelerator.num_processes > 1:  # rank 0's clock decides: all stop together
            device = self.accelerator.device
            planned = int(broadcast(torch.tensor([planned], device=device))[0])
        self.steps = planned
        if self.budget.measured(step):
            self.horizon.steps = planned

    def stop(self, step: int) -> None:
        """End at `step` (early stopping)."""
        self.steps = step

    def times_a_write(self, step: int) -> bool:
        """Whether to checkpoint after `step` to time a write: a budget run's first step."""
        return self.budget is not None and step == self.budget.first_step + 1 == 1

    def record(self, record: BudgetRecord, now: float) -> None:
        """Into a checkpoint's state: the time used so far and the steps planned."""
        if self.budget is not None:
            record.used_seconds, record.planned_steps = self.budget.used(now), self.steps
