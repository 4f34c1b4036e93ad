"""Token classification data: CoNLL-style or jsonl files of tagged words, and their encoding.

A split becomes rows `{"index", "tokens", "tags"}` with tags as ids into the tag set. Encoding
splits words into sub-tokens; the first sub-token of a word carries the word's tag, the other
sub-tokens and the special tokens carry -100 (ignored in the loss and in scoring). Readers name
file and line when a sentence is unusable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from llmtrain.config import TaskConfig
from llmtrain.data.files import read_lines, read_records
from llmtrain.data.tasks import NO_LABEL
from llmtrain.errors import ConfigError, DataError

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


def read_sentences(path: Path, cfg: TaskConfig) -> list[Sentence]:
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


def _jsonl(path: Path, cfg: TaskConfig) -> list[Sentence]:
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
                row.append(tags[word] if first else NO_LABEL)
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
