"""llmtrain.data.tokenizer: a tokenizer is trained once and cached."""

from __future__ import annotations

import pytest

from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.tokenizer import build_tokenizer


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
