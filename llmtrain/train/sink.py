"""Where the loop's metrics go, in one call each: a row of <run>/metrics.jsonl, the same values
to the trackers (as `<split>/<metric>` scalars) and to the console."""

from __future__ import annotations

from typing import Any

from accelerate import Accelerator

from llmtrain.console import Console
from llmtrain.rundir import RunDir
from llmtrain.train import trackers


class Sink:
    def __init__(self, run: RunDir, accelerator: Accelerator, console: Console) -> None:
        self.run, self.accelerator, self.console = run, accelerator, console

    def step(
        self,
        step: int,
        total: int,
        row: dict[str, Any] | None = None,
        counters: dict[str, Any] | None = None,
    ) -> None:
        """A training step done (of `total` planned); at a log step its `row` of metrics and
        the run's `counters` (tokens, epoch, ...), which the console leaves out."""
        if row is not None:
            logged = {**row, **(counters or {})}
            self.run.log({"step": step, "split": "train", **logged})
            trackers.log(self.accelerator, step, "train", logged)
        self.console.step(step, row, total=total)

    def eval(self, step: int, metrics: dict[str, Any]) -> None:
        self.run.log({"step": step, "split": "eval", **metrics})
        trackers.log(self.accelerator, step, "eval", metrics)
        self.console.eval(step, metrics)
