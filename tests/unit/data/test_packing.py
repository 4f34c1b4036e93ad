"""llmtrain.data.packing: the token stream cut into blocks; data.packing=document: the same
blocks as concat, with positions restarting at each document, and block-diagonal attention:
changing one document's tokens changes no other document's logits (BERT and GPT-2, sdpa and
eager attention), and CLM scores nothing across a boundary."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from conftest import tiny_bert, tiny_gpt2

from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.packing import Layout, PackedDataset
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.data.tokens import ArrayTokens
from llmtrain.errors import DataError
from llmtrain.objectives.causal import CausalLM
from llmtrain.objectives.inputs import model_inputs, takes_block_diagonal_attention
from llmtrain.train.contract import IGNORE


def _documents(tokenizer, texts) -> list[list[int]]:
    """Each text's ids as preparation makes them: special tokens, an end-of-text token last."""
    eos = tokenizer.eos_token_id
    ids = tokenizer(list(texts))["input_ids"]
    return [x if eos is None or x[-1] == eos else [*x, eos] for x in ids]


def _stream(docs: list[list[int]]) -> ArrayTokens:
    return ArrayTokens(np.array([i for d in docs for i in d]), [len(d) for d in docs])


def test_document_packing_keeps_the_blocks_and_restarts_positions(tmp_path):
    texts = [" ".join(f"w{i}" for i in range(n)) for n in (5, 40, 3, 70, 12, 9)]
    corpus = datasets.Dataset.from_dict({"text": texts})
    tokenizer = build_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=1), Family.gpt2, corpus, tmp_path, 128
    )
    docs = _documents(tokenizer, texts)
    data = PackedDataset(_stream(docs), 16, Layout.document)
    concat = PackedDataset(_stream(docs), 16)
    blocks = np.stack([data[i]["input_ids"].numpy() for i in range(len(data))])
    assert np.array_equal(blocks, np.stack([concat[i]["input_ids"] for i in range(len(data))]))
    # the expected positions, one token at a time: count up, back to 0 at a document's first
    # token and at every block's first token
    lengths = [len(ids) for ids in docs]
    expected = np.concatenate([np.arange(n) for n in lengths])[: blocks.size]
    expected = expected.reshape(-1, 16).copy()
    for row in expected:
        row[0] = 0
        for j in range(1, 16):
            if row[j] != 0:
                row[j] = row[j - 1] + 1
    positions = np.stack([data[i]["position_ids"].numpy() for i in range(len(data))])
    assert np.array_equal(positions, expected)
    assert (expected == 0).sum() > len(expected)  # documents do start inside blocks


def _tiny_bert(attention: str):
    return tiny_bert(attention=attention, num_hidden_layers=2, max_position_embeddings=32)


def _tiny_gpt2(attention: str):
    model = tiny_gpt2(n_layer=2).eval()
    model.config._attn_implementation = attention
    return model


# one block of 16 tokens: documents at 0-4, 5-10, 11-15
POSITIONS = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4]])
OTHERS = torch.tensor([True] * 5 + [False] * 6 + [True] * 5)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(("build", "causal"), [(_tiny_bert, False), (_tiny_gpt2, True)])
def test_a_document_changes_no_other_documents_logits(build, causal, attention):
    model = build(attention)
    ids = torch.randint(1, 64, (1, 16), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[0, 5:11] = (changed[0, 5:11] + 7) % 63 + 1  # the middle document, other tokens

    def logits(tokens, packed: bool):
        batch = {"input_ids": tokens, **({"position_ids": POSITIONS} if packed else {})}
        with torch.no_grad():
            return model(**model_inputs(model, batch, causal)).logits[0]

    before, after = logits(ids, True), logits(changed, True)
    assert torch.equal(before[OTHERS], after[OTHERS])
    assert not torch.allclose(before[~OTHERS], after[~OTHERS])
    # concat packing: the documents after the changed one do see it
    assert not torch.allclose(logits(ids, False)[11:], logits(changed, False)[11:])


def test_clm_scores_no_document_boundary():
    model = _tiny_gpt2("sdpa")
    batch = {"input_ids": torch.randint(1, 64, (1, 16)), "position_ids": POSITIONS}
    objective = CausalLM()
    loss, n = objective.loss(model, batch)
    labels = objective._labels(batch)
    # the targets at positions 5 and 11 (each document's first token) are not scored
    assert (labels[0] == IGNORE).nonzero().flatten().tolist() == [4, 10]
    assert n == objective.targets(batch) == 13 and torch.isfinite(loss)


def test_without_block_diagonal_attention_documents_are_padded_and_padding_ignored(tmp_path):
    texts = [" ".join(f"w{i}" for i in range(n)) for n in (5, 40, 3)]
    corpus = datasets.Dataset.from_dict({"text": texts})
    tokenizer = build_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=1), Family.gpt2, corpus, tmp_path, 128
    )
    docs = _documents(tokenizer, texts)
    data = PackedDataset(_stream(docs), 16, Layout.padded, pad=tokenizer.eos_token_id)
    # each document cut every 16 tokens, each piece in its own row, the rest padding
    pieces = [d[i : i + 16] for d in docs for i in range(0, len(d), 16)]
    assert [data[i]["input_ids"][: len(p)].tolist() for i, p in enumerate(pieces)] == pieces
    assert [int(data[i]["attention_mask"].sum()) for i in range(len(data))] == list(
        map(len, pieces)
    )
    assert data.num_tokens == sum(map(len, docs))

    model = tiny_gpt2(vocab_size=len(tokenizer)).eval()
    model.config._attn_implementation = "flash_attention_2"  # a model that takes no 4D mask
    assert not takes_block_diagonal_attention(model)
    model.config._attn_implementation = "sdpa"
    objective = CausalLM()
    batch = objective.collate([data[i] for i in range(len(data))])
    with torch.no_grad():
        loss, n = objective.loss(model, batch)
        # the same as each piece alone, unpadded
        alone = [objective.loss(model, {"input_ids": torch.tensor([p])}) for p in pieces]
    assert n == objective.targets(batch) == sum(len(p) - 1 for p in pieces)
    assert torch.allclose(loss, sum(x for x, _ in alone), rtol=1e-5)


@pytest.mark.parametrize("family", [Family.bert, Family.gpt2])
def test_packing_is_the_document_stream_cut_into_blocks(tmp_path, paragraphs, family):
    tokenizer = build_tokenizer(
        TokenizerConfig(vocab_size=400, min_frequency=1),
        family,
        paragraphs,
        tmp_path,
        max_length=128,
    )
    docs = _documents(tokenizer, paragraphs["text"])
    data = PackedDataset(_stream(docs), 32)
    blocks = np.stack([data[i]["input_ids"].numpy() for i in range(len(data))])
    stream = np.concatenate(docs)
    assert blocks.shape == (len(stream) // 32, 32)
    assert np.array_equal(blocks.reshape(-1), stream[: blocks.size])
    separator = tokenizer.sep_token_id if family is Family.bert else tokenizer.eos_token_id
    assert (stream == separator).sum() == len(paragraphs)  # one separator after every document
    with pytest.raises(DataError, match="fewer than one block of trainer.block_size=100000"):
        PackedDataset(_stream(docs), 100_000)
