"""LossModule: the model and the objective's loss as one module, the unit DDP/FSDP wrap."""

from __future__ import annotations

from typing import Any

import torch


class LossModule(torch.nn.Module):
    """The model and the objective's loss in one forward, so DDP/FSDP wrap the whole computation
    and the loss may call the model's parts (e.g. an MLM head on masked positions only)."""

    def __init__(self, model: torch.nn.Module, loss: Any) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        # FSDP's transformer-layer auto-wrap shards each of these classes as its own group
        self._no_split_modules = splittable_layers(model)

    def forward(self, batch: dict[str, torch.Tensor], fn: Any = None) -> Any:
        """`fn(model, batch)` (the loss by default) inside the wrapper's forward, so FSDP
        gathers the weights for evaluation's predictions too."""
        return (fn or self.loss)(self.model, batch)


def splittable_layers(model: torch.nn.Module) -> list[str]:
    """The model's no-split classes (its transformer layers) that may be FSDP groups of their
    own: not those holding a tied weight. BERT lists its embeddings, whose word embeddings are
    the MLM decoder's weight too; a group of their own would split the tie (FSDP2 then
    updates a copy and the decoder sees a sharded weight), so they stay with the root."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    owners: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(param), set()).add(name)
    tied = {name for names_ in owners.values() if len(names_) > 1 for name in names_}
    holding = {
        type(module).__name__
        for prefix, module in model.named_modules()
        if type(module).__name__ in names and any(name.startswith(f"{prefix}.") for name in tied)
    }
    return sorted(names - holding)
