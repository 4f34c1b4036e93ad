"""One pass over evaluation splits: loss per target, and predictions and metrics where the
objective makes predictions. Each example is seen once over all processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.utils.data import Dataset

from llmtrain.config import TrainerConfig
from llmtrain.metrics import perplexity
from llmtrain.train.contract import Objective
from llmtrain.train.sampler import EVAL_EPOCH, make_loader


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
    predicts = hasattr(objective, "predict")
    fn = objective.predict if predicts else objective.loss
    mine = len(loader) if cfg.eval_batches is None else min(len(loader), cfg.eval_batches)
    forwards = mine
    if lockstep is not None:
        forwards = int(accelerator.reduce(torch.tensor(mine, device=accelerator.device), "max"))
    n_parts = getattr(objective, "n_parts", 0)
    sums = torch.zeros(2 + n_parts, dtype=torch.float64, device=accelerator.device)
    rows: list[tuple[int, Any, Any]] = []
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
