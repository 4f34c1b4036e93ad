"""Evaluation: one pass over the evaluation splits (loss per target, and predictions and
metrics where the objective is a Predictor; each example seen once over all processes), and
the Evaluator the loop calls, which adds a command's own metrics and keeps the best model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.utils.data import Dataset

from llmtrain.config import TrainerConfig
from llmtrain.errors import ConfigError
from llmtrain.metrics import perplexity
from llmtrain.rundir import RunDir
from llmtrain.train.checkpoint import full_model_state
from llmtrain.train.contract import Objective, Row
from llmtrain.train.sampler import EVAL_EPOCH, make_loader
from llmtrain.train.state import Best


@dataclass
class Evaluation:
    metrics: dict[str, float]
    # split -> the objective's predictions (from rows (index, prediction, reference) in index
    # order), as the task writes them
    predictions: dict[str, Any] = field(default_factory=dict)


def evaluate(
    model: torch.nn.Module,
    objective: Objective,
    splits: dict[str, Dataset],
    cfg: TrainerConfig,
    accelerator: Accelerator,
    lockstep: torch.nn.Module | None = None,
) -> Evaluation:
    """Metrics of the first split unprefixed (`loss`, `accuracy`), of the others prefixed by
    the split's name (`mismatched_accuracy`).

    `model` is the bare model, never a DDP wrapper: ranks may see different numbers of batches.
    With sharded weights (FSDP) give `lockstep`, the training wrapper: forwards go through it,
    and a process out of batches repeats its last one (result discarded) while others finish.
    """
    if lockstep is None:
        model.to(accelerator.device)  # a model loaded for evaluation starts on the CPU
    was_training = model.training
    model.eval()
    result = Evaluation({})
    for number, (name, dataset) in enumerate(splits.items()):
        prefix = "" if number == 0 else f"{name}_"
        loss, rows, parts = _one_split(model, objective, dataset, cfg, accelerator, lockstep)
        if loss is not None:
            result.metrics[f"{prefix}loss"] = loss
        if parts:  # the objective reports its terms (and its perplexity) itself
            for key, value in objective.report(parts).items():
                result.metrics[f"{prefix}{key}"] = value
        if rows is None:
            if loss is not None and not parts:
                result.metrics[f"{prefix}perplexity"] = perplexity(loss)
            continue
        metrics, result.predictions[name] = objective.score(name, rows)
        for key, value in metrics.items():
            result.metrics[f"{prefix}{key}"] = value
    model.train(was_training)
    return result


def _one_split(model, objective, dataset, cfg, accelerator, lockstep):
    loader = make_loader(
        dataset,
        objective.collate,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        epoch=EVAL_EPOCH,
        rank=accelerator.process_index,
        world=accelerator.num_processes,
        shuffle=False,
    )
    predicts = objective.predicts
    fn = objective.predict if predicts else objective.loss
    mine = len(loader) if cfg.eval_batches is None else min(len(loader), cfg.eval_batches)
    forwards = mine
    if lockstep is not None:
        forwards = int(accelerator.reduce(torch.tensor(mine, device=accelerator.device), "max"))
    sums = torch.zeros(2 + objective.n_parts, dtype=torch.float64, device=accelerator.device)
    rows: list[Row] = []
    batches = iter(loader)
    batch = None
    with torch.no_grad(), accelerator.autocast():
        for i in range(forwards):
            if i < mine:
                batch = {
                    k: v.to(accelerator.device, non_blocking=True) for k, v in next(batches).items()
                }
            out = fn(model, batch) if lockstep is None else lockstep(batch, fn)
            if i >= mine:
                continue  # a repeat, to keep step with the other processes
            if predicts:
                loss_sum, n, preds = out
                rows += zip(
                    batch["index"].tolist(), preds.tolist(), batch["labels"].tolist(), strict=True
                )
                parts = []
            else:
                loss_sum, n, *parts = out
            counts = torch.stack([loss_sum.double(), n.double()])
            sums += torch.cat([counts, *(p.to(sums) for p in parts)])
    sums = accelerator.reduce(sums, "sum").tolist()
    loss = sums[0] / sums[1] if sums[1] > 0 else None
    if not predicts:
        return loss, None, sums[2:]
    if accelerator.num_processes > 1:
        rows = gather_object(rows)
    return loss, sorted(rows), sums[2:]


@dataclass
class Select:
    """Keep the model with the best `metric` in <run>/best/ (written by `export(directory,
    weights)`, `weights` being the whole model's state dict)."""

    metric: str
    export: Callable[[Path, dict[str, torch.Tensor]], None]
    greater_is_better: bool = True

    def better(self, new: float, old: float | None) -> bool:
        return old is None or (new > old if self.greater_is_better else new < old)


class Evaluator:
    """What the loop calls at each evaluation: the splits' metrics, plus `extra(model)`'s (e.g.
    SFT's generations), and with `select` the best model so far kept in <run>/best/.
    `closing_evals`: evaluations left after the last step (a budget keeps time for them)."""

    def __init__(
        self,
        splits: dict[str, Dataset],
        objective: Objective,
        cfg: TrainerConfig,
        accelerator: Accelerator,
        select: Select | None = None,
        extra: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        closing_evals: int = 1,
    ) -> None:
        if cfg.early_stopping and select is None:
            raise ConfigError(
                "trainer.early_stopping needs a task metric to watch (llmtrain finetune)"
            )
        self.splits, self.objective, self.cfg, self.accelerator = (
            splits,
            objective,
            cfg,
            accelerator,
        )
        self.select, self.extra, self.closing_evals = select, extra, closing_evals
        self.best: Evaluation | None = None  # the best evaluation of this attempt

    def evaluate(
        self, model: torch.nn.Module, lockstep: torch.nn.Module | None = None
    ) -> Evaluation:
        """The splits' metrics (see `evaluate`) and the extra ones."""
        result = evaluate(model, self.objective, self.splits, self.cfg, self.accelerator, lockstep)
        if self.extra is not None:
            result.metrics.update(self.extra(model))
        return result

    def track(
        self, result: Evaluation, best: Best, step: int, model: torch.nn.Module, run: RunDir
    ) -> None:
        """Count `result` against the best so far; a better one is exported to <run>/best/."""
        if self.select is None:
            return
        value = result.metrics[self.select.metric]
        if not self.select.better(value, best.value):
            best.evals_since += 1
            return
        best.value, best.step, best.evals_since, self.best = value, step, 0, result
        weights = full_model_state(model)  # every process: FSDP gathers shards
        with run.write_dir("best") as tmp:
            if tmp is not None:
                self.select.export(tmp, weights)

    def stop_early(self, best: Best, step: int) -> str | None:
        """Why training should end at `step` (trainer.early_stopping), or None."""
        patience = self.cfg.early_stopping
        if not patience or best.evals_since < patience:
            return None
        return (
            f"early stopping at step {step}: no better {self.select.metric} in {patience} "
            f"evaluations (best {best.value:.4g} at step {best.step})"
        )
