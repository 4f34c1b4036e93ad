"""Objectives for fine-tuning heads: a label per example (sequence classification or
regression), a tag per word (token classification) and the first and last token of an answer
(extractive question answering). All keep the contract of llmtrain.train.contract (collate,
targets, loss as a sum and a count; predict and score for evaluation)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from llmtrain.metrics import tagging_metrics, task_metrics
from llmtrain.train.contract import IGNORE, Predictor, Row

_MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def pad_batch(
    tokenizer: PreTrainedTokenizerBase, examples: list[dict], extra: dict[str, tuple[list, Any]]
) -> dict[str, torch.Tensor]:
    """The model inputs padded per batch, plus per-token `extra` columns {name: (a sequence per
    example, fill value)} padded alike, on the tokenizer's padding side, and the rows' index."""
    keys = [k for k in ("input_ids", "token_type_ids") if k in examples[0]]
    batch = dict(tokenizer.pad([{k: ex[k] for k in keys} for ex in examples], return_tensors="pt"))
    length = batch["input_ids"].shape[1]
    left = tokenizer.padding_side == "left"
    for name, (sequences, fill) in extra.items():
        padded = [
            [fill] * (length - len(s)) + list(s) if left else list(s) + [fill] * (length - len(s))
            for s in sequences
        ]
        batch[name] = torch.tensor(padded)
    batch["index"] = torch.tensor([ex["index"] for ex in examples])
    return batch


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in _MODEL_INPUTS if k in batch}


class SequenceClassification(Predictor):
    """One label per example (or a score, for regression) from a sequence-classification head.

    Examples are tokenised rows `{"input_ids", ["token_type_ids"], "label", "index"}`, padded per
    batch. Rows without a label (-100, or NaN for regression: GLUE's test files) are predicted
    but not counted in the loss.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, metrics: list[str], regression: bool
    ) -> None:
        self.tokenizer, self.metric_names, self.regression = tokenizer, metrics, regression

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        keys = [k for k in ("input_ids", "token_type_ids") if k in examples[0]]
        batch = self.tokenizer.pad(
            [{k: ex[k] for k in keys} for ex in examples], return_tensors="pt"
        )
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor([ex["label"] for ex in examples], dtype=dtype)
        batch["index"] = torch.tensor([ex["index"] for ex in examples])
        return dict(batch)

    def _forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        logits = model(**inputs).logits.float()
        labels = batch["labels"]
        if self.regression:
            scores = logits.squeeze(-1)
            known = ~torch.isnan(labels)
            loss = F.mse_loss(scores[known], labels[known], reduction="sum")
            return loss, known.sum(), scores
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
        return loss, (labels != IGNORE).sum(), logits.argmax(-1)

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        return (~torch.isnan(labels) if self.regression else labels != IGNORE).sum()

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, n, _ = self._forward(model, batch)
        return loss, n

    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        """(loss sum, labelled count, predictions): one forward for evaluation."""
        return self._forward(model, batch)

    def score(self, split: str, rows: list[Row]) -> tuple[dict[str, float], list[Row]]:
        """Metrics over the rows that have a label; the rows are the predictions."""
        labelled = [(p, r) for _, p, r in rows if _labelled(r)]
        if not labelled:
            return {}, rows
        preds, refs = zip(*labelled, strict=True)
        return task_metrics(self.metric_names, list(preds), list(refs)), rows


def _labelled(reference: Any) -> bool:
    return not (reference == IGNORE or (isinstance(reference, float) and math.isnan(reference)))


class TokenClassification(Predictor):
    """A tag per word from a token-classification head: the loss and the predictions count the
    labelled sub-tokens only (each word's first); scores are seqeval's entity-level precision,
    recall and F1 in `scheme`, and word accuracy."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, labels: list[str], scheme: str) -> None:
        self.tokenizer, self.labels, self.scheme = tokenizer, labels, scheme

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        return pad_batch(
            self.tokenizer, examples, {"labels": ([ex["labels"] for ex in examples], IGNORE)}
        )

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (batch["labels"] != IGNORE).sum()

    def _forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        logits = model(**_inputs(batch)).logits.float()
        labels = batch["labels"]
        loss = F.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return loss, (labels != IGNORE).sum(), logits.argmax(-1)

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        loss, n, _ = self._forward(model, batch)
        return loss, n

    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        return self._forward(model, batch)

    def score(
        self, split: str, rows: list[Row]
    ) -> tuple[dict[str, float], list[tuple[int, list[str], list[str]]]]:
        """Metrics over the words; predictions are (index, gold tags, predicted tags)."""
        out = []
        for index, pred, ref in rows:
            pairs = [
                (self.labels[r], self.labels[p])
                for p, r in zip(pred, ref, strict=True)
                if r != IGNORE
            ]
            out.append((index, [g for g, _ in pairs], [p for _, p in pairs]))
        gold, predicted = [g for _, g, _ in out], [p for _, _, p in out]
        return tagging_metrics(gold, predicted, self.scheme), out


# A window's scores as the QA objective hands them to scoring: (starts, ends, null), where
# starts and ends are the best (token, score) candidates inside the context.
Candidates = tuple[list[tuple[int, float]], list[tuple[int, float]], float]


class QuestionAnswering(Predictor):
    """Start and end of the answer span from a question-answering head, one target per window
    (the loss is the mean of the start and end cross-entropies; (0, 0) is "not in this window").

    Prediction keeps each window's `n_best` start and end candidates inside the context and its
    null score; `answer(split, {window index: Candidates})` turns them into the split's metrics
    and answers (it knows the windows' text, which the objective does not)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        n_best: int,
        answer: Callable[[str, dict[int, Candidates]], tuple[dict[str, float], Any]],
    ) -> None:
        self.tokenizer, self.n_best, self.answer = tokenizer, n_best, answer

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        context = [[s >= 0 for s, _ in ex["offsets"]] for ex in examples]
        batch = pad_batch(self.tokenizer, examples, {"context_mask": (context, False)})
        batch["labels"] = torch.tensor([ex["labels"] for ex in examples])
        return batch

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        return torch.tensor(labels.shape[0], device=labels.device)

    def _forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        out = model(**_inputs(batch))
        padding = batch["attention_mask"] == 0  # padding never takes part, whatever the batch
        start = out.start_logits.float().masked_fill(padding, float("-inf"))
        end = out.end_logits.float().masked_fill(padding, float("-inf"))
        labels = batch["labels"]
        loss = (
            F.cross_entropy(start, labels[:, 0], reduction="sum")
            + F.cross_entropy(end, labels[:, 1], reduction="sum")
        ) / 2
        return loss, torch.tensor(labels.shape[0], device=loss.device), start, end

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        loss, n, _, _ = self._forward(model, batch)
        return loss, n

    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        """Per window: the n best start and end positions inside the context with their
        scores, and the null score, packed in one row [starts, start scores, ends, end scores,
        null]."""
        loss, n, start, end = self._forward(model, batch)
        outside = ~batch["context_mask"]
        k = min(self.n_best, start.shape[1])
        s_score, s_pos = start.masked_fill(outside, float("-inf")).topk(k, dim=1)
        e_score, e_pos = end.masked_fill(outside, float("-inf")).topk(k, dim=1)
        null = (start[:, 0] + end[:, 0]).unsqueeze(1)
        return loss, n, torch.cat([s_pos.float(), s_score, e_pos.float(), e_score, null], dim=1)

    def score(self, split: str, rows: list[Row]) -> tuple[dict[str, float], Any]:
        k = (len(rows[0][1]) - 1) // 4 if rows else 0
        candidates = {
            index: (
                _finite(packed[:k], packed[k : 2 * k]),
                _finite(packed[2 * k : 3 * k], packed[3 * k : 4 * k]),
                packed[-1],
            )
            for index, packed, _ in rows
        }
        return self.answer(split, candidates)


def _finite(positions: list[float], scores: list[float]) -> list[tuple[int, float]]:
    """(token, score) candidates, without the fillers topk took from outside the context."""
    return [(int(p), s) for p, s in zip(positions, scores, strict=True) if s > float("-inf")]
