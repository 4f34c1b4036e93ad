"""What the loop needs of an objective, declared once: the loop and evaluation call these and
nothing else (no attribute probing).

- `collate(examples) -> batch`: tensors on the CPU;
- `targets(batch) -> n_targets`: how many targets the batch has, known before any forward;
- `loss(model, batch) -> (loss_sum, n_targets[, parts])`: the *sum* of per-target losses and
  their count. An objective with more to report than one loss (MLM + NSP) sets `n_parts` and
  returns a third value: a 1-D tensor of `n_parts` sums (each term's loss sum and count, say).
  The loop and evaluation add these up like the loss (over micro-batches, the logging window
  and processes) and log `report(totals) -> {name: value}` beside `loss`; such an objective
  reports its own perplexity, if it has one.
- A `Predictor` (a task head) also makes predictions, for evaluation:
  `predict(model, batch) -> (loss_sum, n_targets, predictions)`, one prediction per example,
  matched to the batch's `index` and `labels` as rows (index, prediction, reference), and
  `score(split, rows) -> (metrics, predictions)`: a split's metrics from all its rows, and the
  predictions as the task writes them. It says so by subclassing `Predictor` (`predicts`).

A training set whose example at an index depends on the epoch (a mixture, whose sources each
move on to their next pass) subclasses `ByEpoch`: the loader indexes it with the (epoch, index)
key instead of the index. A training set of unknown length, read in order (a streamed corpus),
subclasses `Stream`: the loader iterates its `examples` instead of indexing it.

The loop scales each micro-batch's sum by 1 / (targets over all micro-batches and processes)
before backward, which makes gradient accumulation and multi-process training token-exact.
Objectives subclass these protocols, inheriting the defaults (no parts, no predictions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # torch-free at run time: task kinds subclass these where --help reads them
    import torch

IGNORE = -100  # the label of a position that is no target (PyTorch's cross-entropy default)
Row = tuple[int, Any, Any]  # (example index, prediction, reference)
Batch = dict[str, "torch.Tensor"]


class Objective(Protocol):
    n_parts: ClassVar[int] = 0  # sums `loss` returns beyond (loss_sum, n_targets)
    predicts: ClassVar[bool] = False  # True for a Predictor

    def collate(self, examples: list[dict]) -> Batch: ...

    def targets(self, batch: Batch) -> torch.Tensor: ...

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, ...]: ...

    def report(self, parts: list[float]) -> dict[str, float]:
        """The metrics of the `n_parts` summed parts (none without parts)."""
        return {}


class Predictor(Objective, Protocol):
    predicts: ClassVar[bool] = True

    def predict(
        self, model: torch.nn.Module, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def score(self, split: str, rows: list[Row]) -> tuple[dict[str, float], Any]: ...


class ByEpoch:
    """A dataset indexed by (epoch, index): its examples at an index change with the epoch."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: tuple[int, int]) -> dict: ...


class Stream:
    """Examples read in order, an epoch a pass, of a length known only at its end."""

    def examples(
        self, epoch: int, rank: int, world: int, start: int, batch_size: int
    ) -> Iterator[tuple[int, dict]]:
        """This process's (position, example) pairs of an epoch from its `start`-th: every
        `world`-th of the whole order, in whole global batches (`batch_size` per process), so
        that all processes take the same number of steps. The position (in the whole order)
        keys the example's randomness."""
        ...
