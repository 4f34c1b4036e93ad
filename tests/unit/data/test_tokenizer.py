"""llmtrain.data.tokenizer: a tokenizer is trained once and cached, and the same text trains
the same tokenizer, every build."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.tokenizer import build_tokenizer

# ../shared/data next to the repository (which CI and the development checkout have).
SHAKESPEARE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "tinyshakespeare"


@pytest.mark.parametrize("family", [Family.bert, Family.gpt2])
def test_tokenizer_is_trained_once_and_cached(tmp_path, paragraphs, family):
    cfg = TokenizerConfig(vocab_size=400, min_frequency=1)
    first = build_tokenizer(cfg, family, paragraphs, tmp_path, max_length=128)
    cached = list((tmp_path / "tokenizers").iterdir())
    assert len(cached) == 1
    stamp = (cached[0] / "tokenizer.json").stat().st_mtime_ns
    second = build_tokenizer(cfg, family, paragraphs, tmp_path, max_length=128)
    assert (cached[0] / "tokenizer.json").stat().st_mtime_ns == stamp
    assert first("Document 3 says")["input_ids"] == second("Document 3 says")["input_ids"]
    other = build_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=1),
        family,
        paragraphs,
        tmp_path,
        max_length=128,
    )
    assert len(list((tmp_path / "tokenizers").iterdir())) == 2 and len(other) <= 300
    if family is Family.bert:
        assert first.cls_token and first.mask_token and "token_type_ids" in first("a b")
    else:
        assert (
            first.eos_token == "<|endoftext|>"
            and first.decode(first("Hello world")["input_ids"]) == "Hello world"
        )


def test_the_same_text_trains_the_same_wordpiece_tokenizer(tmp_path):
    """Three builds from fresh caches (the WordPiece trainer used to number its pieces in
    hash-map order: 2,148, 2,147 and 2,146 tokens from three builds)."""
    text = (SHAKESPEARE / "input.txt").read_text().split("\n\n")
    texts = datasets.Dataset.from_dict({"text": text})
    cfg = TokenizerConfig(vocab_size=3000)
    vocabularies = []
    for build in range(3):
        build_tokenizer(cfg, Family.bert, texts, tmp_path / str(build), max_length=512)
        [saved] = (tmp_path / str(build) / "tokenizers").glob("*/tokenizer.json")
        vocabularies.append(json.loads(saved.read_text())["model"]["vocab"])
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]
    assert len(vocabularies[0]) == 3000
