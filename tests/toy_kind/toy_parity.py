"""A task kind from outside llmtrain, for tests/e2e/test_toy_kind.py: is a sentence's number of
words even or odd? Its own schema, data (made up, no files), head, objective and metric."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtrain.config import ModelConfig, opt
from llmtrain.tasks import TaskConfig
from llmtrain.train.contract import Predictor

HEAD = "classify"
LABELS = ["even", "odd"]
WORDS = "the cat sat on a mat and ran far away".split()


@dataclass
class ParityConfig(TaskConfig):
    kind: str = opt("toy_parity", "a toy kind: word-count parity")
    name: str = opt("toy", "the task's name")
    max_length: int = opt(32, "tokens per sentence")
    examples: int = opt(48, "sentences per split")


SCHEMA = ParityConfig


def check(cfg: ParityConfig, model: ModelConfig) -> None:
    from llmtrain.errors import ConfigError

    if cfg.examples < 2:
        raise ConfigError(f"task.examples={cfg.examples} must be at least 2")


def _split(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 8))) for _ in range(n)]


class Parity:
    main_metric, greater_is_better = "parity_accuracy", True
    eval_splits = ["validation"]

    def __init__(self, cfg: ParityConfig, training: bool) -> None:
        self.cfg = cfg
        self.texts = {"validation": _split(cfg.examples, 1)}
        if training:
            self.texts["train"] = _split(cfg.examples, 0)

    def describe(self) -> str:
        return "word-count parity"

    def train_texts(self) -> list[str]:
        return self.texts["train"]

    def encode(self, tokenizer: Any, warn: Any) -> dict[str, Any]:
        import datasets

        out = {}
        for name, texts in self.texts.items():
            enc = tokenizer(texts, truncation=True, max_length=self.cfg.max_length)
            out[name] = datasets.Dataset.from_dict(
                {
                    "input_ids": enc["input_ids"],
                    "label": [len(t.split()) % 2 for t in texts],
                    "index": list(range(len(texts))),
                }
            )
        return out

    def build_model(self, cfg: ModelConfig, tokenizer: Any) -> Any:
        from llmtrain.models import build_classifier

        return build_classifier(cfg, tokenizer, LABELS)

    def objective(self, tokenizer: Any) -> ParityObjective:
        return ParityObjective(tokenizer)

    def predictions_file(self, split: str, predictions: list) -> tuple[str, str]:
        lines = [f"{self.texts[split][i]}\t{LABELS[p]}" for i, p, _ in predictions]
        return f"predictions/{split}.txt", "\n".join(lines) + "\n"

    def extra(self, tokenizer: Any, accelerator: Any, run: Any) -> None:
        return None


def load(
    cfg: ParityConfig, cache_dir: Path, training: bool, model_labels: Any, seed: int
) -> Parity:
    return Parity(cfg, training)


class ParityObjective(Predictor):
    """Cross-entropy over the two classes; the metric is the share predicted right (a Predictor:
    the loop's evaluation scores its predictions)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def collate(self, examples: list[dict]) -> dict:
        import torch

        batch = dict(
            self.tokenizer.pad(
                [{"input_ids": ex["input_ids"]} for ex in examples], return_tensors="pt"
            )
        )
        batch["labels"] = torch.tensor([ex["label"] for ex in examples])
        batch["index"] = torch.tensor([ex["index"] for ex in examples])
        return batch

    def targets(self, batch: dict) -> Any:
        return batch["labels"].new_tensor(len(batch["labels"]))

    def predict(self, model: Any, batch: dict) -> tuple:
        import torch.nn.functional as F

        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        logits = model(**inputs).logits.float()
        loss = F.cross_entropy(logits, batch["labels"], reduction="sum")
        return loss, self.targets(batch), logits.argmax(-1)

    def loss(self, model: Any, batch: dict) -> tuple:
        loss, n, _ = self.predict(model, batch)
        return loss, n

    def score(self, split: str, rows: list) -> tuple[dict[str, float], list]:
        right = sum(int(p == r) for _, p, r in rows)
        return {"parity_accuracy": right / len(rows)}, rows
