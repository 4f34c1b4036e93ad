"""Sentence pairs from documents, for next-sentence (NSP) and sentence-order (SOP) prediction.

The method of Google's BERT (create_pretraining_data.py): each document is split into sentences
(`data.sentence_split`), consecutive sentences are gathered into a chunk until it reaches the
target length (`block_size - 3`, or with `short_seq_prob` a random shorter one), and the chunk
is cut at a random sentence boundary into A and B. Then
- NSP: half the time B is replaced by text from a random *other* document (label 1) and the
  sentences it displaced go back to be used by the next chunk; else B is A's true continuation
  (label 0). Google's script re-draws up to 10 times to avoid A's own document and may still
  land on it; here the draw is over the other documents only, so it never does.
- SOP (ALBERT): B is always A's continuation; half the pairs are swapped (label 1).
A chunk of a single sentence is cut at a random token instead, so it can be either kind of pair
(Google's script makes every such chunk a random pair, which skews the labels on corpora of
short documents like the standard library's docstrings). Pairs longer than the block lose
tokens from the longer segment, at its front or back at random, as in BERT.

Each example is `[CLS] A [SEP] B [SEP]` with token type ids 0 for `[CLS] A [SEP]`, 1 for
`B [SEP]`, padded to the block. Pairs are built once per split, cached as a .npy file (one row a
pair: ids, then length, len(A), label) and memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from llmtrain.atomic import atomic_file
from llmtrain.config import SentenceSplit
from llmtrain.data.tokenizer import tokenizer_fingerprint
from llmtrain.errors import ConfigError, DataError

# Bump when splitting, tokenising or pairing below changes, so older caches are not reused.
_PAIRS_VERSION = 1
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_META = 3  # columns after the ids: length, len(A), label

Pair = tuple[list[int], list[int], int]  # A, B, label


def split_sentences(text: str, rule: SentenceSplit) -> list[str]:
    """A document's sentences: its non-blank lines, or (punctuation) the text cut after
    `.`, `!` or `?` followed by whitespace, line breaks inside a sentence read as spaces."""
    if rule is SentenceSplit.punctuation:
        pieces = _SENTENCE_END.split(" ".join(text.split()))
    else:
        pieces = text.splitlines()
    return [p.strip() for p in pieces if p.strip()]


def make_pairs(
    documents: Sequence[Sequence[Sequence[int]]],
    max_tokens: int,
    sentence_order: bool,
    short_seq_prob: float,
    rng: random.Random,
) -> Iterator[Pair]:
    """(A, B, label) pairs from documents of tokenised sentences, A and B together at most
    `max_tokens` long. NSP needs at least two documents."""
    for d, doc in enumerate(documents):
        chunk: list[Sequence[int]] = []
        length, i = 0, 0
        target = _target_length(max_tokens, short_seq_prob, rng)
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            if i == len(doc) - 1 or length >= target:
                pair, unused = _pair(chunk, d, documents, target, sentence_order, rng)
                if pair is not None:
                    _truncate(pair, max_tokens, rng)
                    yield pair
                i -= unused  # sentences a random B displaced start the next chunk
                chunk, length = [], 0
                target = _target_length(max_tokens, short_seq_prob, rng)
            i += 1


def _target_length(max_tokens: int, short_seq_prob: float, rng: random.Random) -> int:
    # Mostly full blocks; sometimes shorter, so the model also sees the short inputs of
    # fine-tuning. (Google draws this once per document; per chunk keeps the share exact.)
    return rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens


def _pair(chunk, d, documents, target, sentence_order, rng) -> tuple[Pair | None, int]:
    """The chunk as a pair, and how many of its sentences went unused."""
    segments, cut_one = list(chunk), len(chunk) == 1
    if cut_one:
        if len(chunk[0]) < 2:
            return None, 0
        k = rng.randint(1, len(chunk[0]) - 1)
        segments = [chunk[0][:k], chunk[0][k:]]
    a_end = rng.randint(1, len(segments) - 1)
    a = [t for s in segments[:a_end] for t in s]
    b = [t for s in segments[a_end:] for t in s]
    if sentence_order:
        return ((b, a, 1) if rng.random() < 0.5 else (a, b, 0)), 0
    if rng.random() >= 0.5:
        return (a, b, 0), 0
    # B from any document but A's own: draw among the others.
    r = rng.randrange(len(documents) - 1)
    other = documents[r + (r >= d)]
    b = []
    for sentence in other[rng.randrange(len(other)) :]:
        b.extend(sentence)
        if len(b) >= target - len(a):
            break
    return (a, b, 1), 0 if cut_one else len(segments) - a_end


def _truncate(pair: Pair, max_tokens: int, rng: random.Random) -> None:
    """Shorten the longer of A and B, one token at a time from its front or back at random."""
    a, b, _ = pair
    spans = [[0, len(a)], [0, len(b)]]  # [start, end) kept of A and of B
    while sum(e - s for s, e in spans) > max_tokens:
        span = spans[0] if spans[0][1] - spans[0][0] > spans[1][1] - spans[1][0] else spans[1]
        if rng.random() < 0.5:
            span[0] += 1
        else:
            span[1] -= 1
    for segment, (s, e) in zip((a, b), spans, strict=True):
        del segment[e:]
        del segment[:s]


def tokenize_documents(
    corpus: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    rule: SentenceSplit,
    cache_dir: Path,
) -> datasets.Dataset:
    """Each document as a list of tokenised sentences (no special tokens); cached."""

    def encode(batch: dict) -> dict:
        split = [split_sentences(text, rule) for text in batch["text"]]
        flat = [s for doc in split for s in doc]
        ids = tokenizer(
            flat,
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        out, k = [], 0
        for doc in split:
            out.append([x for x in ids[k : k + len(doc)] if x])
            k += len(doc)
        return {"sentences": out}

    key = f"{corpus._fingerprint}-{tokenizer_fingerprint(tokenizer)}-{rule.value}-v{_PAIRS_VERSION}"
    return cached_map(corpus, encode, Path(cache_dir) / "sentences", key, "splitting sentences")


def pair_blocks(
    corpus: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    cache_dir: Path,
    what: str,
    *,
    sentence_order: bool,
    rule: SentenceSplit,
    short_seq_prob: float,
    dupe_factor: int,
    seed: int,
) -> np.ndarray:
    """The corpus as a read-only (n_pairs, block_size + 3) array, memory-mapped: each row the
    padded ids of `[CLS] A [SEP] B [SEP]`, then its length, len(A) and label."""
    task = "mlm_sop" if sentence_order else "mlm_nsp"
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ConfigError(f"objective={task} needs a tokenizer with [CLS] and [SEP] tokens")
    tokenized = tokenize_documents(corpus, tokenizer, rule, cache_dir)
    settings = [task, block_size, short_seq_prob, dupe_factor, seed, _PAIRS_VERSION]
    key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]
    path = Path(cache_dir) / "pairs" / f"{tokenized._fingerprint}-{key}.npy"
    if not path.exists():
        documents = [doc for doc in tokenized["sentences"] if doc]
        if len(documents) < 2:
            fix = (
                "; raise data.validation_fraction or give data.validation_files"
                if what == "validation"
                else ""
            )
            raise DataError(
                f"objective={task} pairs sentences across documents, but the {what} split has "
                f"{len(documents)} document (a blank line separates documents in .txt files; "
                f"one record is one document in .jsonl, .parquet and hub data){fix}"
            )
        rng = random.Random(seed)
        pairs = [
            p
            for _ in range(dupe_factor)
            for p in make_pairs(documents, block_size - 3, sentence_order, short_seq_prob, rng)
        ]
        save_atomic(path, pair_rows(pairs, block_size, tokenizer))
    return np.load(path, mmap_mode="r")


def pair_rows(pairs: list[Pair], block_size: int, tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """Pairs as rows: the ids of `[CLS] A [SEP] B [SEP]` padded to the block, then the
    length, len(A) and the label."""
    dtype = np.uint16 if max(len(tokenizer), block_size) <= np.iinfo(np.uint16).max else np.int32
    rows = np.full((len(pairs), block_size + _META), tokenizer.pad_token_id, dtype=dtype)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for row, (a, b, label) in zip(rows, pairs, strict=True):
        ids = [cls, *a, sep, *b, sep]
        row[: len(ids)] = ids
        row[-_META:] = (len(ids), len(a), label)
    return rows


class PairDataset(torch.utils.data.Dataset):
    """Pairs as examples `{"input_ids", "token_type_ids", "attention_mask",
    "next_sentence_label"}`, each padded to the block (the collator trims a batch's padding)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = torch.from_numpy(self.rows[i].astype(np.int64))
        ids, (length, a_len, label) = row[:-_META], row[-_META:].tolist()
        position = torch.arange(len(ids))
        return {
            "input_ids": ids,
            # [CLS] A [SEP] is segment 0, B [SEP] segment 1, padding 0.
            "token_type_ids": ((position > a_len + 1) & (position < length)).long(),
            "attention_mask": (position < length).long(),
            "next_sentence_label": torch.tensor(label),
        }

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray(self.rows[:, -_META], dtype=np.int64)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def cached_map(
    corpus: datasets.Dataset, fn: Callable[[dict], dict], where: Path, key: str, desc: str
) -> datasets.Dataset:
    """`corpus.map(fn)` in batches, replacing the columns, cached as `where/<key>.arrow`."""
    path = where / f"{key}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    return corpus.map(
        fn,
        batched=True,
        remove_columns=corpus.column_names,
        cache_file_name=str(path),
        new_fingerprint=key,
        desc=desc,
    )


def save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array)
