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


class SupervisedLM(Objective):
    """Next-token prediction on the response tokens only (llmtrain.data.sft makes the rows:
    `labels` hold the token ids at target positions, IGNORE elsewhere).

    Rows are padded per batch; `position_ids` go to the model instead of an attention mask, so
    a packed row's examples (positions restarting at 0) each attend only to themselves, and the
    padding, after every real token and never a target, changes nothing. `attention_mask` marks
    the real tokens for the loop's token count; the model does not get it.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(ex["input_ids"]) for ex in examples)
        batch = {
            k: torch.full((len(examples), longest), fill, dtype=torch.long)
            for k, fill in (("input_ids", self.pad_id), ("labels", IGNORE), ("position_ids", 0))
        }
        batch["attention_mask"] = torch.zeros(len(examples), longest, dtype=torch.long)
        for i, ex in enumerate(examples):
            n = len(ex["input_ids"])
            batch["input_ids"][i, :n] = torch.as_tensor(ex["input_ids"])
            batch["labels"][i, :n] = torch.as_tensor(ex["labels"])
            positions = torch.as_tensor(ex["position_ids"])
            # Padding continues the last example's positions: one sequence, no new one.
            batch["position_ids"][i] = torch.cat(
                [positions, positions[-1] + 1 + torch.arange(longest - n)]
            )
            batch["attention_mask"][i, :n] = 1
        return batch

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (batch["labels"][:, 1:] != IGNORE).sum()

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids, labels = batch["input_ids"], batch["labels"][:, 1:]
        scored = labels != IGNORE
        # position_ids alone (not the token-count mask): block-diagonal causal attention
        packed = {"input_ids": ids, "position_ids": batch["position_ids"]}
        loss = head_loss(model, packed, lambda h: h[:, :-1][scored], labels[scored], causal=True)
        if loss is None:
            logits = model(**model_inputs(model, packed, True)).logits[:, :-1][scored]
            return sum_cross_entropy(logits, labels[scored])
        return loss
