"""An objective that also counts each source's tokens, for a mixture (llmtrain.data.mixture):
train rows carry `tokens_<source>`, the realised mix, beside the wrapped objective's own terms."""

from __future__ import annotations

import torch

from llmtrain.metrics import perplexity
from llmtrain.train.contract import Batch, Objective


class BySource(Objective):
    def __init__(self, objective: Objective, names: list[str]) -> None:
        self.objective, self.names = objective, names
        # the wrapped objective's parts, its loss sum and count (for its perplexity), the counts
        self.n_parts = objective.n_parts + 2 + len(names)

    def collate(self, examples: list[dict]) -> Batch:
        batch = self.objective.collate(examples)
        if "source" in examples[0]:  # training examples; validation splits are one source each
            batch["source"] = torch.tensor([ex["source"] for ex in examples])
        return batch

    def targets(self, batch: Batch) -> torch.Tensor:
        return self.objective.targets(batch)

    def loss(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, ...]:
        batch = dict(batch)
        source = batch.pop("source", None)
        loss_sum, count, *parts = self.objective.loss(model, batch)
        counts = torch.zeros(len(self.names), device=loss_sum.device)
        if source is not None:
            mask = batch.get("attention_mask")
            per_row = (
                mask.sum(1)
                if mask is not None
                else batch["input_ids"].new_full((len(source),), batch["input_ids"].shape[1])
            )
            counts.index_add_(0, source.to(counts.device), per_row.to(counts))
        own = torch.stack([loss_sum.detach(), torch.as_tensor(count).to(loss_sum)])
        return loss_sum, count, torch.cat([*(p.to(counts) for p in parts), own.to(counts), counts])

    def report(self, parts: list[float]) -> dict[str, float]:
        n = self.objective.n_parts
        out = self.objective.report(parts[:n])
        loss_sum, count = parts[n : n + 2]
        if not n and count:
            out["perplexity"] = perplexity(loss_sum / count)
        counts = parts[n + 2 :]
        if sum(counts):  # training rows: the mix of this window
            out.update({f"tokens_{name}": c for name, c in zip(self.names, counts, strict=True)})
        return out
