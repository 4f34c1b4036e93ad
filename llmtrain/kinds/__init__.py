"""Kinds of labelled task: what each brings to `llmtrain finetune` and `llmtrain evaluate`.

A kind reads its task's files (at construction), encodes them for a tokenizer, builds the model
with its head, gives the objective that trains and scores it (see llmtrain.train.contract), and lays
out its prediction files. The commands call them in that order and know nothing else of a task.
A new kind is one module here and its task names in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain.config import ModelConfig, TaskConfig
from llmtrain.train.contract import Objective


class Kind(Protocol):
    main_metric: str  # selects the best model
    eval_splits: list[str]  # evaluated during training; "test" (if encoded) is only predicted

    def describe(self) -> str:
        """The task in a few words for the console, e.g. "9 tags"."""
        ...

    def train_texts(self) -> list[str]:
        """The training text a fresh model's tokenizer is trained on."""
        ...

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, datasets.Dataset]:
        """Model-ready splits (the training split only when training)."""
        ...

    def build_model(
        self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase
    ) -> PreTrainedModel: ...

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> Objective:
        """Called after `encode`."""
        ...

    def predictions_file(self, split: str, predictions: Any) -> tuple[str, str]:
        """(path inside the run directory, text) for a split's predictions from `score`."""
        ...


# Task name -> kind module; any other name is sequence classification (GLUE, custom).
KINDS = {"ner": "tagging", "squad": "qa", "squad_v2": "qa"}
# Kind module -> the model head it trains (llmtrain.models.build_head).
_HEADS = {"classification": "classify", "tagging": "tag", "qa": "qa"}


def head(task: str) -> str:
    """The model head task `task` trains and scores."""
    return _HEADS[KINDS.get(task, "classification")]


def load_kind(
    cfg: TaskConfig, cache_dir: Path, training: bool, model_labels: list[str] | None = None
) -> Kind:
    """The task's kind with its files read: for training (train and evaluation splits) or for
    evaluation only; `model_labels` are the label names of the model being evaluated."""
    from importlib import import_module

    module = import_module(f"llmtrain.kinds.{KINDS.get(cfg.name, 'classification')}")
    return module.load(cfg, cache_dir, training, model_labels)
