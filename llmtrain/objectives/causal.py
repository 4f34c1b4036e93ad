"""Next-token prediction: on every token (GPT's pretraining) or on responses only (SFT)."""

from __future__ import annotations

import torch

from llmtrain.objectives.inputs import model_inputs, stack
from llmtrain.objectives.vocab_loss import head_loss, sum_cross_entropy
from llmtrain.train.contract import IGNORE, Objective


class CausalLM(Objective):
    """GPT's next-token prediction: every token is a target for the position before it (with
    document packing, except a document segment's first token: nothing before it is its own)."""

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        return stack(examples)

    @staticmethod
    def _labels(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["input_ids"][:, 1:]
        if "attention_mask" in batch:  # padded documents: padding is no target
            return labels.masked_fill(batch["attention_mask"][:, 1:] == 0, IGNORE)
        if "position_ids" in batch:  # a segment's first token: nothing before it is its own
            return labels.masked_fill(batch["position_ids"][:, 1:] == 0, IGNORE)
        return labels

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self._labels(batch) != IGNORE).sum()

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The last position predicts nothing: leave it out before the head, not after.
        labels = self._labels(batch)
        loss = head_loss(model, batch, lambda h: h[:, :-1], labels, causal=True)
        if loss is None:
            logits = model(**model_inputs(model, batch, True)).logits[:, :-1]
            return sum_cross_entropy(logits, labels)
        return loss
