"""Token classification (`task=ner`, and any tagging task): a tag per word."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain.config import ModelConfig, TaskConfig
from llmtrain.data.tagging import (
    check_tag,
    encode_tagged,
    predictions_conll,
    read_sentences,
    tag_set,
    to_dataset,
)
from llmtrain.errors import ConfigError
from llmtrain.kinds.files import task_files
from llmtrain.models import build_tagger
from llmtrain.task_objectives import TokenClassification


class Tagging:
    main_metric = "f1"
    eval_splits = ["validation"]

    def __init__(
        self, cfg: TaskConfig, training: bool, model_labels: list[str] | None = None
    ) -> None:
        self.cfg, self.scheme = cfg, cfg.scheme.value
        files = task_files(cfg, training)
        sentences = {split: read_sentences(path, cfg) for split, path in files.items()}
        if cfg.labels:
            self.labels, source = list(cfg.labels), "task.labels"
            for tag in self.labels:
                check_tag(tag, self.scheme, "task.labels")
        elif training:
            self.labels = tag_set(sentences["train"], self.scheme)
            source = f"the training file {files['train']}"
        elif model_labels:
            self.labels, source = list(model_labels), "the model"
        else:
            raise ConfigError(f"task={cfg.name}: give the tag set in task.labels")
        self.splits = {
            split: to_dataset(found, self.labels, source) for split, found in sentences.items()
        }
        if training and cfg.max_train_examples is not None:
            n = min(cfg.max_train_examples, len(self.splits["train"]))
            self.splits["train"] = self.splits["train"].select(range(n))
        self.encoded: dict[str, datasets.Dataset] = {}

    def describe(self) -> str:
        return f"{len(self.labels)} tags, scheme {self.scheme}"

    def train_texts(self) -> list[str]:
        return [" ".join(tokens) for tokens in self.splits["train"]["tokens"]]

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, datasets.Dataset]:
        for name, split in self.splits.items():
            self.encoded[name], cut = encode_tagged(split, tokenizer, self.cfg.max_length)
            if cut:
                warn(
                    f"{cut} of {len(split)} {name} sentences are longer than "
                    f"task.max_length={self.cfg.max_length} tokens and were truncated "
                    "(their last words are neither trained on nor scored)"
                )
        return self.encoded

    def build_model(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        return build_tagger(cfg, tokenizer, self.labels)

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> TokenClassification:
        return TokenClassification(tokenizer, self.labels, self.scheme)

    def predictions_file(
        self, split: str, predictions: list[tuple[int, list[str], list[str]]]
    ) -> tuple[str, str]:
        words = self.encoded[split]["words"]
        return f"predictions/{split}.conll", predictions_conll(predictions, words)


def load(
    cfg: TaskConfig, cache_dir: Path, training: bool, model_labels: list[str] | None
) -> Tagging:
    return Tagging(cfg, training, model_labels)
