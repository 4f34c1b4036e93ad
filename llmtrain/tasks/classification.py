"""Sequence classification (GLUE tasks, `task=custom` files): one label per example, or a score
(regression: a GLUE task without labels, or task.num_labels=1).

GLUE's registry and readers are in tasks/glue.py, labelled files in tasks/labelled_files.py;
torch is imported where used (the schema is read by --help without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtrain.config import ModelConfig, opt
from llmtrain.errors import ConfigError
from llmtrain.tasks import TaskConfig
from llmtrain.train.contract import IGNORE, Predictor

if TYPE_CHECKING:
    import datasets
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmtrain.tasks.labelled_files import TaskData
    from llmtrain.train.contract import Row

HEAD = "classify"


@dataclass
class ClassificationConfig(TaskConfig):
    kind: str = opt("classification", "sequence classification: a GLUE task or custom files")
    name: str = opt("sst2", "a GLUE task (cola, sst2, …: GLUE's data), or any other: your files")
    data_dir: str | None = opt(None, "GLUE: read GLUE's own TSV files here instead of the hub")
    train_file: str | None = opt(None, "custom: training file (.csv, .tsv, .jsonl, .parquet)")
    validation_file: str | None = opt(None, "custom: evaluation file")
    test_file: str | None = opt(None, "custom: file to predict (labels optional)")
    text_fields: list[str] = opt(help="custom: one or two text columns", factory=lambda: ["text"])
    label_field: str = opt("label", "custom: the label column")
    labels: list[str] = opt(
        help="custom: the label set in id order; empty: read from train", factory=list
    )
    num_labels: int | None = opt(None, "custom: 1 for regression; else checked against the labels")
    max_train_examples: int | None = opt(None, "use only the first N training examples")


SCHEMA = ClassificationConfig
_CUSTOM_ONLY = ("train_file", "validation_file", "test_file", "text_fields", "label_field")


def check(cfg: ClassificationConfig, model: ModelConfig) -> None:
    from llmtrain.tasks.glue import GLUE

    files = cfg.train_file or cfg.validation_file
    if cfg.name not in GLUE and cfg.name != "custom" and not files:  # a misspelt GLUE task?
        raise ConfigError(
            f"task.name={cfg.name} is not one of GLUE's tasks ({', '.join(GLUE)}); for your own "
            "files give task.train_file and task.validation_file"
        )
    defaults = ClassificationConfig(name=cfg.name)
    if cfg.name in GLUE:  # a GLUE task's files and fields are GLUE's
        for key in (*_CUSTOM_ONLY, "labels", "num_labels"):
            if getattr(cfg, key) != getattr(defaults, key):
                raise ConfigError(
                    f"task.{key}: task={cfg.name} is a GLUE task (task=custom: your files)"
                )
    elif cfg.data_dir:
        raise ConfigError(
            f"task.data_dir: task={cfg.name} reads task.train_file and its siblings "
            "(task.data_dir is for GLUE's tasks)"
        )


class Classification:
    greater_is_better = True

    def __init__(
        self,
        cfg: ClassificationConfig,
        cache_dir: Path,
        training: bool,
        model_labels: list[str] | None,
    ) -> None:
        from llmtrain.tasks.glue import GLUE, read_glue
        from llmtrain.tasks.labelled_files import read_custom

        self.cfg, self.training = cfg, training
        labels = _class_names(model_labels)
        if cfg.name in GLUE:
            self.data: TaskData = read_glue(cfg, cache_dir, labels)
        else:  # any other name (custom, or a task file's own): local labelled files
            self.data = read_custom(cfg, training, labels)
        self.main_metric = self.data.metrics[0]
        self.eval_splits = self.data.eval_splits

    @property
    def labels(self) -> list[str]:
        return self.data.labels

    def describe(self) -> str:
        return "regression" if self.data.regression else f"{len(self.data.labels)} labels"

    def train_texts(self) -> list[str]:
        train = self.data.splits["train"]
        return list(train["text_a"]) + (list(train["text_b"]) if self.data.pair else [])

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, datasets.Dataset]:
        return {
            name: encode(split, tokenizer, self.cfg.max_length)
            for name, split in self.data.splits.items()
            if self.training or name != "train"
        }

    def build_model(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        from llmtrain.models import build_classifier

        return build_classifier(cfg, tokenizer, self.data.labels)

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> SequenceClassification:
        return SequenceClassification(tokenizer, self.data.metrics, self.data.regression)

    def predictions_file(self, split: str, predictions: list[Row]) -> tuple[str, str]:
        return f"predictions/{split}.tsv", self.data.predictions_tsv(split, predictions)

    def extra(self, tokenizer: Any, accelerator: Any, run: Any) -> None:
        return None


def load(
    cfg: ClassificationConfig,
    cache_dir: Path,
    training: bool,
    model_labels: list[str] | None,
    seed: int,
) -> Classification:
    return Classification(cfg, cache_dir, training, model_labels)


def _class_names(labels: list[str] | None) -> list[str] | None:
    """The classes a model names, or None: transformers' defaults (LABEL_0, LABEL_1, …) name
    none, nor does a regression head's single output."""
    if not labels or len(labels) < 2 or labels == [f"LABEL_{i}" for i in range(len(labels))]:
        return None
    return labels


def encode(
    split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> datasets.Dataset:
    """Token ids (and segment ids where the tokenizer makes them) for one or two text segments,
    truncated to `max_length`; padding is left to each batch."""
    pair = "text_b" in split.column_names

    def tokenize(batch: dict) -> dict:
        return tokenizer(
            batch["text_a"],
            batch["text_b"] if pair else None,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
        )

    return split.map(
        tokenize,
        batched=True,
        remove_columns=[c for c in ("text_a", "text_b") if c in split.column_names],
    )


class SequenceClassification(Predictor):
    """One label per example (or a score, for regression) from a sequence-classification head.

    Examples are tokenised rows `{"input_ids", ["token_type_ids"], "label", "index"}`, padded per
    batch. Rows without a label (IGNORE, or NaN for regression: GLUE's test files) are predicted
    but not counted in the loss.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, metrics: list[str], regression: bool
    ) -> None:
        self.tokenizer, self.metric_names, self.regression = tokenizer, metrics, regression

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        import torch

        keys = [k for k in ("input_ids", "token_type_ids") if k in examples[0]]
        batch = self.tokenizer.pad(
            [{k: ex[k] for k in keys} for ex in examples], return_tensors="pt"
        )
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor([ex["label"] for ex in examples], dtype=dtype)
        batch["index"] = torch.tensor([ex["index"] for ex in examples])
        return dict(batch)

    def _forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        import torch
        import torch.nn.functional as F

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
        import torch

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
        from llmtrain.metrics import task_metrics

        labelled = [(p, r) for _, p, r in rows if _labelled(r)]
        if not labelled:
            return {}, rows
        preds, refs = zip(*labelled, strict=True)
        return task_metrics(self.metric_names, list(preds), list(refs)), rows


def _labelled(reference: Any) -> bool:

    return not (reference == IGNORE or (isinstance(reference, float) and math.isnan(reference)))
