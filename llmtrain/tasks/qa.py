"""Extractive question answering (`task=squad`, `task=squad_v2`): the answer is a span of the
context, or (SQuAD 2.0) nothing. Reading SQuAD files, windows over long contexts and answers
from scores: tasks/squad.py. torch is imported where used (the schema is read by --help
without it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtrain.config import ModelConfig, opt
from llmtrain.errors import ConfigError
from llmtrain.tasks import TaskConfig, limit, model_inputs, pad_batch, task_files
from llmtrain.train.contract import Predictor

if TYPE_CHECKING:
    import datasets
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmtrain.train.contract import Row

HEAD = "qa"


@dataclass
class QAConfig(TaskConfig):
    kind: str = opt("qa", "extractive question answering (SQuAD)")
    name: str = opt("squad", "squad (every question has an answer) or squad_v2 (not every one)")
    train_file: str | None = opt(None, "training file (SQuAD JSON); null: the hub dataset")
    validation_file: str | None = opt(None, "evaluation file (SQuAD JSON)")
    hub_dataset: str | None = opt(None, "hub dataset read when no files are given")
    max_length: int = opt(384, "tokens per window (question and a part of the context)")
    doc_stride: int = opt(128, "context tokens shared by consecutive windows")
    max_answer_length: int = opt(30, "longest answer in tokens")
    n_best: int = opt(20, "start and end candidates per window")
    null_threshold: float = opt(
        0.0, "squad_v2: answer nothing when the null score beats the best span by more than this"
    )
    max_train_examples: int | None = opt(None, "use only the first N training examples")


SCHEMA = QAConfig


def check(cfg: QAConfig, model: ModelConfig) -> None:
    from llmtrain.models import check_head

    check_head(model, HEAD)
    for key in ("n_best", "max_answer_length"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"task.{key}={getattr(cfg, key)} must be positive")


class QuestionAnsweringTask:
    main_metric, greater_is_better = "f1", True
    eval_splits = ["validation"]

    def __init__(self, cfg: QAConfig, cache_dir: Path, training: bool) -> None:
        from llmtrain.tasks.squad import DEFAULT_HUB, hub_squad, read_squad

        self.cfg, self.v2 = cfg, cfg.name == "squad_v2"
        if cfg.train_file or cfg.validation_file:
            files = task_files(cfg, training)
            self.splits = {split: read_squad(path, self.v2) for split, path in files.items()}
        else:  # the hub dataset by name
            name = cfg.hub_dataset or DEFAULT_HUB[self.v2]
            self.splits = hub_squad(name, cache_dir, self.v2)
            if not training:
                del self.splits["train"]
        limit(self.splits, cfg.max_train_examples if training else None)
        self.golds = {
            name: dict(zip(split["id"], split["answers"], strict=True))
            for name, split in self.splits.items()
        }
        self.features: dict[str, datasets.Dataset] = {}

    def describe(self) -> str:
        return "SQuAD 2.0 (unanswerable questions allowed)" if self.v2 else "SQuAD 1.1"

    def train_texts(self) -> list[str]:
        train = self.splits["train"]
        return list(train["question"]) + list(dict.fromkeys(train["context"]))

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, datasets.Dataset]:
        from llmtrain.tasks.squad import encode_squad

        self.features = {
            name: encode_squad(split, tokenizer, self.cfg.max_length, self.cfg.doc_stride)
            for name, split in self.splits.items()
        }
        return self.features

    def build_model(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        from llmtrain.models import build_head

        return build_head(cfg, tokenizer, HEAD)

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> QuestionAnswering:
        return QuestionAnswering(tokenizer, self.cfg.n_best, self.answer)

    def answer(
        self, split: str, scores: dict[int, Candidates]
    ) -> tuple[dict[str, float], dict[str, str]]:
        """The split's answers (question id -> text) from its windows' scores, and their exact
        match and F1."""
        from llmtrain.metrics import squad_metrics
        from llmtrain.tasks.squad import answers_from_scores

        answers = answers_from_scores(
            self.splits[split],
            self.features[split],
            scores,
            self.cfg.max_answer_length,
            self.cfg.null_threshold if self.v2 else None,
        )
        return squad_metrics(answers, self.golds[split], self.v2), answers

    def predictions_file(self, split: str, predictions: dict[str, str]) -> tuple[str, str]:
        from llmtrain.tasks.squad import predictions_json

        return f"predictions/{split}.json", predictions_json(predictions)

    def extra(self, tokenizer: Any, accelerator: Any, run: Any) -> None:
        return None


def load(
    cfg: QAConfig, cache_dir: Path, training: bool, model_labels: list[str] | None, seed: int
) -> QuestionAnsweringTask:
    return QuestionAnsweringTask(cfg, cache_dir, training)


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
        import torch

        context = [[s >= 0 for s, _ in ex["offsets"]] for ex in examples]
        batch = pad_batch(self.tokenizer, examples, {"context_mask": (context, False)})
        batch["labels"] = torch.tensor([ex["labels"] for ex in examples])
        return batch

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        import torch

        labels = batch["labels"]
        return torch.tensor(labels.shape[0], device=labels.device)

    def _forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        import torch
        import torch.nn.functional as F

        out = model(**model_inputs(batch))
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
        import torch

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
