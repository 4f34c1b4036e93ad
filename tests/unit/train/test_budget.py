"""llmtrain.train.budget: budget durations and their errors, the plan that keeps time for the
end, and a resumed run continuing the same budget (in-process)."""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import fit_tiny

from llmtrain.errors import ConfigError, TrainingStopped
from llmtrain.objectives.causal import CausalLM
from llmtrain.train.budget import Budget, parse_budget


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("600", 600), (45, 45)],
)
def test_budget_durations(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["20min", "", "0", "-5", "h", "1m1h", "nan"])
def test_a_bad_budget_names_the_key(text):
    with pytest.raises(ConfigError, match=r"^trainer\.budget="):
        parse_budget(text)


def test_the_plan_keeps_time_for_the_end_and_stops_when_none_is_left():
    budget = Budget(100.0, started=0.0)  # 100 s; the clock is given explicitly below
    budget.step_begins(0, 0.0)
    # after the first step (5 s, one-off costs included): that rate, pessimistically; the
    # reserve is 1.25 x (an evaluation of 2 s + 2 x a checkpoint write of 1 s) + 1 s = 6 s
    assert not budget.measured(1)
    assert (
        budget.plan(1, 5.0, now=5.0, eval_seconds=2.0, save_seconds=1.0) == 1 + (100 - 5 - 6) // 5
    )
    budget.step_begins(1, 6.0)  # a checkpoint took 1 s after step 1: the average starts here
    assert budget.measured(2)
    assert budget.plan(2, 1.0, now=7.0, eval_seconds=2.0, save_seconds=1.0) == 2 + 87
    # late in the run: no time left for another step and the end -> this step is the last
    assert budget.plan(80, 1.0, now=94.0, eval_seconds=2.0, save_seconds=1.0) == 80
    resumed = Budget(100.0, started=0.0, used_before=60.0)
    assert resumed.used(10.0) == 70.0


class Stopping(CausalLM):
    """Sends itself SIGTERM at one training forward pass (the loop checkpoints after the step)."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def loss(self, model, batch):
        if model.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(model, batch)


def test_a_resumed_budget_run_continues_the_same_budget(tmp_path):
    with pytest.raises(TrainingStopped, match="stopped by SIGTERM at step 2"):
        fit_tiny(tmp_path / "run", Stopping(2), budget="12s", save_every=0)
    state = json.loads(
        (tmp_path / "run" / "checkpoints" / "step-2" / "trainer_state.json").read_text()
    )
    used_before = state["state"]["budget"]["used_seconds"]
    assert used_before > 0 and state["state"]["budget"]["planned_steps"] > 2
    _, _, result = fit_tiny(tmp_path / "run", CausalLM(), budget="12s", save_every=0)
    budget = result.budget
    assert budget.used_before == used_before
    assert result.steps > 2 and budget.used() <= 12
