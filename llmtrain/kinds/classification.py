"""Sequence classification (GLUE tasks and custom files): one label or score per example."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain.config import ModelConfig, TaskConfig
from llmtrain.data.tasks import encode, load_task
from llmtrain.models import build_classifier
from llmtrain.task_objectives import SequenceClassification
from llmtrain.train.contract import Row


class Classification:
    def __init__(
        self, cfg: TaskConfig, cache_dir: Path, training: bool, model_labels: list[str] | None
    ) -> None:
        self.cfg, self.training = cfg, training
        self.task = load_task(cfg, cache_dir, training, _class_names(model_labels))
        self.main_metric = self.task.metrics[0]
        self.eval_splits = self.task.eval_splits

    def describe(self) -> str:
        return "regression" if self.task.regression else f"{len(self.task.labels)} labels"

    def train_texts(self) -> list[str]:
        train = self.task.splits["train"]
        return list(train["text_a"]) + (list(train["text_b"]) if self.task.pair else [])

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, datasets.Dataset]:
        return {
            name: encode(split, tokenizer, self.cfg.max_length)
            for name, split in self.task.splits.items()
            if self.training or name != "train"
        }

    def build_model(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        return build_classifier(cfg, tokenizer, self.task.labels)

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> SequenceClassification:
        return SequenceClassification(tokenizer, self.task.metrics, self.task.regression)

    def predictions_file(self, split: str, predictions: list[Row]) -> tuple[str, str]:
        return f"predictions/{split}.tsv", self.task.predictions_tsv(split, predictions)


def load(
    cfg: TaskConfig, cache_dir: Path, training: bool, model_labels: list[str] | None
) -> Classification:
    return Classification(cfg, cache_dir, training, model_labels)


def _class_names(labels: list[str] | None) -> list[str] | None:
    """The classes a model names, or None: transformers' defaults (LABEL_0, LABEL_1, …) name
    none, nor does a regression head's single output."""
    if not labels or len(labels) < 2 or labels == [f"LABEL_{i}" for i in range(len(labels))]:
        return None
    return labels
