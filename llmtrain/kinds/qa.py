"""Extractive question answering (`task=squad`, `task=squad_v2`): the answer is a span of the
context, or (SQuAD 2.0) nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain.config import ModelConfig, TaskConfig
from llmtrain.data.squad import (
    DEFAULT_HUB,
    answers_from_scores,
    encode_squad,
    hub_squad,
    predictions_json,
    read_squad,
)
from llmtrain.errors import ConfigError
from llmtrain.kinds.files import task_files
from llmtrain.metrics import squad_metrics
from llmtrain.models import build_head
from llmtrain.task_objectives import Candidates, QuestionAnswering


class QuestionAnsweringTask:
    main_metric = "f1"
    eval_splits = ["validation"]

    def __init__(self, cfg: TaskConfig, cache_dir: Path, training: bool) -> None:
        for key in ("n_best", "max_answer_length"):
            if getattr(cfg, key) < 1:
                raise ConfigError(f"task.{key}={getattr(cfg, key)} must be positive")
        self.cfg, self.v2 = cfg, cfg.name == "squad_v2"
        if cfg.train_file or cfg.validation_file:
            files = task_files(cfg, training)
            self.splits = {split: read_squad(path, self.v2) for split, path in files.items()}
        else:  # the hub dataset by name
            name = cfg.hub_dataset or DEFAULT_HUB[self.v2]
            self.splits = hub_squad(name, cache_dir, self.v2)
            if not training:
                del self.splits["train"]
        if training and cfg.max_train_examples is not None:
            n = min(cfg.max_train_examples, len(self.splits["train"]))
            self.splits["train"] = self.splits["train"].select(range(n))
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
        self.features = {
            name: encode_squad(split, tokenizer, self.cfg.max_length, self.cfg.doc_stride)
            for name, split in self.splits.items()
        }
        return self.features

    def build_model(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        return build_head(cfg, tokenizer, "qa")

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> QuestionAnswering:
        return QuestionAnswering(tokenizer, self.cfg.n_best, self.answer)

    def answer(
        self, split: str, scores: dict[int, Candidates]
    ) -> tuple[dict[str, float], dict[str, str]]:
        """The split's answers (question id -> text) from its windows' scores, and their exact
        match and F1."""
        answers = answers_from_scores(
            self.splits[split],
            self.features[split],
            scores,
            self.cfg.max_answer_length,
            self.cfg.null_threshold if self.v2 else None,
        )
        return squad_metrics(answers, self.golds[split], self.v2), answers

    def predictions_file(self, split: str, predictions: dict[str, str]) -> tuple[str, str]:
        return f"predictions/{split}.json", predictions_json(predictions)


def load(
    cfg: TaskConfig, cache_dir: Path, training: bool, model_labels: list[str] | None
) -> QuestionAnsweringTask:
    return QuestionAnsweringTask(cfg, cache_dir, training)
