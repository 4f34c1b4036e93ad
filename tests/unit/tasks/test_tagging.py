"""llmtrain.tasks.tagging: both file formats read alike, sub-token alignment and truncation, and
bad data named by file and line."""

from __future__ import annotations

import string
from pathlib import Path

import datasets
import pytest
from span_fixtures import LONG, sentence, write_conll, write_tag_jsonl

from llmtrain import tasks
from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.errors import DataError
from llmtrain.tasks.tagging import TaggingConfig


def _kind(tmp_path: Path, train: Path, dev: Path, **kw):
    cfg = TaggingConfig(train_file=str(train), validation_file=str(dev), **kw)
    return tasks.load(cfg, tmp_path, training=True)


def test_conll_and_jsonl_read_alike(tmp_path):
    sentences = [sentence(i) for i in range(6)]
    conll = _kind(tmp_path, write_conll(tmp_path / "a.conll", sentences), tmp_path / "a.conll")
    jsonl = _kind(
        tmp_path,
        write_tag_jsonl(tmp_path / "a.jsonl", sentences),
        tmp_path / "a.jsonl",
        tokens_field="words",
        tags_field="labels",
    )
    for kind in (conll, jsonl):  # -DOCSTART- skipped, the tag is the last column
        assert kind.labels == ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]
        train = kind.splits["train"]
        assert len(train) == 6 and train[0]["tokens"] == [
            "John",
            "Smith",
            "lives",
            "in",
            "Paris",
            ".",
        ]
        assert [kind.labels[t] for t in train[0]["tags"]] == [t for _, t in sentences[0]]
    assert conll.splits["train"][:] == jsonl.splits["train"][:]


def test_first_sub_token_carries_the_tag_and_truncation_is_counted(tmp_path):
    words = [w for w, _ in sentence(4)]  # Olga Berg works for Initech in Rio de Janeiro .
    tokenizer = build_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=1),
        Family.bert,
        # whole words for a few, letters (also word-inside ones) for the rest
        datasets.Dataset.from_dict({"text": ["olga berg .", "x" + string.ascii_lowercase]}),
        tmp_path,
        max_length=512,
    )
    train = write_conll(tmp_path / "t.conll", [sentence(4), LONG])
    kind = _kind(tmp_path, train, train, max_length=64)
    warnings = []
    row = kind.encode(tokenizer, warnings.append)["train"][0]
    tags = [kind.labels[t] for t in kind.splits["train"][0]["tags"]]
    pieces = [tokenizer.tokenize(w) for w in words]
    assert any(len(p) > 1 for p in pieces)  # the vocabulary splits some words
    expected = [-100]
    for piece, tag in zip(pieces, tags, strict=True):
        expected += [kind.labels.index(tag)] + [-100] * (len(piece) - 1)
    assert row["labels"] == expected + [-100]
    assert row["words"] == words
    assert warnings == [
        "1 of 2 train sentences are longer than task.max_length=64 tokens and were truncated "
        "(their last words are neither trained on nor scored)",
        "1 of 2 validation sentences are longer than task.max_length=64 tokens and were "
        "truncated (their last words are neither trained on nor scored)",
    ]


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "John B-PER\nlives O\n\n"


@pytest.mark.parametrize(
    ("train", "dev", "message"),
    [
        (
            (
                "t.jsonl",
                '{"tokens": ["a", "b"], "tags": ["O", "O"]}\n'
                '{"tokens": ["a", "b", "c"], "tags": ["O", "O"]}\n',
            ),
            ("d.conll", GOOD),
            "t.jsonl:2: 3 tokens but 2 tags",
        ),
        (
            ("t.conll", GOOD),
            ("d.conll", "-DOCSTART- O\n\nJohn B-PER\nlives O\nin O\nParis B-XYZ\n"),
            "d.conll:6: tag 'B-XYZ' is not in the tag set of the training file",
        ),
        (("t.conll", "John B-PER\nlives\n"), ("d.conll", GOOD), "t.conll:2: 'lives' has no tag"),
        (
            ("t.conll", "John PER\n"),
            ("d.conll", GOOD),
            "t.conll:1: tag 'PER' does not fit task.scheme=IOB2",
        ),
        (
            ("t.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n'),
            ("d.jsonl", '{"tokens": ["a", "b"], "tags": ["O", "B-X"]}\n'),
            "d.jsonl:1: word 2: tag 'B-X' is not in the tag set",
        ),
    ],
)
def test_bad_tagging_data_names_file_and_line(tmp_path, train, dev, message):
    with pytest.raises(DataError) as error:
        _kind(tmp_path, _bad(tmp_path, *train), _bad(tmp_path, *dev))
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(str(tmp_path))
