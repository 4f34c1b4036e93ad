"""Token classification (`task=ner`, and any tagging task): a tag per word, from CoNLL-style or
jsonl files of tagged words.

A split becomes rows `{"index", "tokens", "tags"}` with tags as ids into the tag set. Encoding
splits words into sub-tokens; the first sub-token of a word carries the word's tag, the other
sub-tokens and the special tokens carry IGNORE (left out of the loss and of scoring). Readers
name file and line when a sentence is unusable. torch is imported where used (the schema is
read by --help without it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets

from llmtrain.config import ModelConfig, opt
from llmtrain.data.files import read_lines, read_records
from llmtrain.errors import ConfigError, DataError
from llmtrain.tasks import TaskConfig, limit, model_inputs, pad_batch, task_files
from llmtrain.train.contract import IGNORE, Predictor

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmtrain.train.contract import Row

HEAD = "tag"


class TagScheme(Enum):
    IOB1 = "IOB1"
    IOB2 = "IOB2"
    IOE1 = "IOE1"
    IOE2 = "IOE2"
    IOBES = "IOBES"
    BILOU = "BILOU"
    conlleval = "conlleval"


@dataclass
class TaggingConfig(TaskConfig):
    kind: str = opt("tagging", "token classification: a tag per word")
    name: str = opt("ner", "the task's name")
    train_file: str | None = opt(None, "training file: CoNLL-style (token … tag), or .jsonl")
    validation_file: str | None = opt(None, "evaluation file")
    tokens_field: str = opt("tokens", ".jsonl: the list of words")
    tags_field: str = opt("tags", ".jsonl: the list of tags, one per word")
    labels: list[str] = opt(help="the tag set in id order; empty: read from train", factory=list)
    scheme: TagScheme = opt(
        TagScheme.IOB2,
        "tagging scheme for entity scores (strict, seqeval): IOB1, IOB2, IOE1, IOE2, IOBES, "
        "BILOU; conlleval: lenient, as conlleval",
    )
    max_train_examples: int | None = opt(None, "use only the first N training examples")


SCHEMA = TaggingConfig


def check(cfg: TaggingConfig, model: ModelConfig) -> None:
    from llmtrain.models import check_head

    check_head(model, HEAD)


class Tagging:
    main_metric, greater_is_better = "f1", True
    eval_splits = ["validation"]

    def __init__(
        self, cfg: TaggingConfig, training: bool, model_labels: list[str] | None = None
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
        limit(self.splits, cfg.max_train_examples if training else None)
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
        from llmtrain.models import build_tagger

        return build_tagger(cfg, tokenizer, self.labels)

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> TokenClassification:
        return TokenClassification(tokenizer, self.labels, self.scheme)

    def predictions_file(
        self, split: str, predictions: list[tuple[int, list[str], list[str]]]
    ) -> tuple[str, str]:
        words = self.encoded[split]["words"]
        return f"predictions/{split}.conll", predictions_conll(predictions, words)

    def extra(self, tokenizer: Any, accelerator: Any, run: Any) -> None:
        return None


def load(
    cfg: TaggingConfig, cache_dir: Path, training: bool, model_labels: list[str] | None, seed: int
) -> Tagging:
    return Tagging(cfg, training, model_labels)


# The prefixes each scheme's tags may carry (besides the plain outside tag "O").
PREFIXES = {
    "IOB1": "IB",
    "IOB2": "IB",
    "IOE1": "IE",
    "IOE2": "IE",
    "IOBES": "IOBES",
    "BILOU": "BILU",
    "conlleval": "IBES",
}


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    locate: Callable[[int], str]  # where word i is written: "file:line" (+ ": word n" in jsonl)


def read_sentences(path: Path, cfg: TaggingConfig) -> list[Sentence]:
    """A jsonl file (`task.tokens_field`, `task.tags_field` lists) or, for any other suffix, a
    CoNLL file: `token … tag` per line, a blank line between sentences, -DOCSTART- skipped."""
    sentences = _jsonl(path, cfg) if path.suffix.lower() == ".jsonl" else _conll(path)
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def _conll(path: Path) -> list[Sentence]:
    sentences, tokens, tags, first = [], [], [], 0

    def close() -> None:
        if tokens:
            start = first
            sentences.append(Sentence(list(tokens), list(tags), lambda i: f"{path}:{start + i}"))
        tokens.clear()
        tags.clear()

    for number, line in enumerate(read_lines(path), 1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            close()
            continue
        if len(columns) < 2:
            raise DataError(
                f"{path}:{number}: '{line.strip()}' has no tag (expected 'token … tag')"
            )
        if not tokens:
            first = number
        tokens.append(columns[0])
        tags.append(columns[-1])
    close()
    return sentences


def _jsonl(path: Path, cfg: TaggingConfig) -> list[Sentence]:
    sentences = []
    for number, record in read_records(path)[1]:
        where = f"{path}:{number}"
        lists = []
        for key in ("tokens_field", "tags_field"):
            name = getattr(cfg, key)
            if not isinstance(record, dict) or name not in record:
                raise DataError(f"{where}: no field '{name}' (task.{key})")
            if not isinstance(record[name], list):
                raise DataError(f"{where}: '{name}' is not a list")
            lists.append(record[name])
        tokens, tags = lists
        if len(tokens) != len(tags):
            raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
        if not tokens:
            continue
        tags = [_tag_name(t, cfg.labels, f"{where}: word {i + 1}") for i, t in enumerate(tags)]
        sentences.append(
            Sentence([str(t) for t in tokens], tags, lambda i, w=where: f"{w}: word {i + 1}")
        )
    return sentences


def _tag_name(tag: object, labels: list[str], where: str) -> str:
    """Tags as names; a number (as the hub's datasets write them) indexes `task.labels`."""
    if isinstance(tag, int) and not isinstance(tag, bool):
        if not 0 <= tag < len(labels):
            raise DataError(f"{where}: tag {tag} is a number: give the tag names in task.labels")
        return labels[tag]
    return str(tag)


def tag_set(sentences: list[Sentence], scheme: str) -> list[str]:
    """The training file's tags in a fixed (sorted) order, each checked against the scheme."""
    first: dict[str, str] = {}
    for sentence in sentences:
        for i, tag in enumerate(sentence.tags):
            first.setdefault(tag, sentence.locate(i))
    for tag, where in first.items():
        check_tag(tag, scheme, where)
    return sorted(first)


def check_tag(tag: str, scheme: str, where: str) -> None:
    prefix, dash, kind = tag.partition("-")
    if tag != "O" and not (dash and kind and len(prefix) == 1 and prefix in PREFIXES[scheme]):
        allowed = ", ".join(f"{p}-" for p in PREFIXES[scheme])
        raise DataError(
            f"{where}: tag '{tag}' does not fit task.scheme={scheme} "
            f"(O, or {allowed} followed by a type)"
        )


def to_dataset(sentences: list[Sentence], labels: list[str], source: str) -> datasets.Dataset:
    """Rows `{"index", "tokens", "tags"}`; a tag outside the tag set is an error naming its
    line (`source` says where the tag set came from)."""
    ids = {tag: i for i, tag in enumerate(labels)}
    rows: dict[str, list] = {"index": [], "tokens": [], "tags": []}
    for number, sentence in enumerate(sentences):
        for i, tag in enumerate(sentence.tags):
            if tag not in ids:
                raise DataError(
                    f"{sentence.locate(i)}: tag '{tag}' is not in the tag set of {source} "
                    f"({', '.join(labels)})"
                )
        rows["index"].append(number)
        rows["tokens"].append(sentence.tokens)
        rows["tags"].append([ids[t] for t in sentence.tags])
    return datasets.Dataset.from_dict(rows)


def encode_tagged(
    split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[datasets.Dataset, int]:
    """Sub-token ids with one label per sub-token (the word's tag on its first sub-token, -100
    elsewhere) and `words`, the words that kept a labelled sub-token; and how many sentences
    were cut at `max_length` (their last words are neither trained on nor scored)."""

    if not tokenizer.is_fast:
        raise ConfigError(
            "token classification needs a fast tokenizer (it maps sub-tokens to words)"
        )

    def tokenize(batch: dict) -> dict:
        enc = tokenizer(
            batch["tokens"],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
        )
        labels, words, truncated = [], [], []
        for i, (tokens, tags) in enumerate(zip(batch["tokens"], batch["tags"], strict=True)):
            row, kept, previous = [], [], None
            for word in enc.word_ids(i):
                first = word is not None and word != previous
                row.append(tags[word] if first else IGNORE)
                if first:
                    kept.append(word)
                previous = word if word is not None else previous
            labels.append(row)
            words.append([tokens[w] for w in kept])
            full = len(enc["input_ids"][i]) >= max_length
            truncated.append(full and (not kept or kept[-1] < len(tokens) - 1))
        return {**enc, "labels": labels, "words": words, "truncated": truncated}

    encoded = split.map(tokenize, batched=True, remove_columns=["tokens", "tags"])
    cut = sum(encoded["truncated"])
    return encoded.remove_columns("truncated"), cut


def predictions_conll(predictions: list[tuple[int, list[str], list[str]]], words: list) -> str:
    """`token gold predicted` per line, a blank line after each sentence."""
    blocks = []
    for index, gold, pred in predictions:
        lines = zip(words[index], gold, pred, strict=True)
        blocks.append("".join(f"{w} {g} {p}\n" for w, g, p in lines))
    return "\n".join(blocks)


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
        import torch.nn.functional as F

        logits = model(**model_inputs(batch)).logits.float()
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
        from llmtrain.metrics import tagging_metrics

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
