"""Objectives: MLM masking statistics on real tokenizer output, and losses as (sum, count)."""

from __future__ import annotations

import datasets
import pytest
import torch
from conftest import tiny_gpt2
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

from llmtrain.config import Family, ObjectiveConfig, ObjectiveName, TokenizerConfig
from llmtrain.data.packing import BlockDataset, pack_blocks
from llmtrain.data.sources import stdlib_docstrings
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.objectives.causal import CausalLM
from llmtrain.objectives.masked import MaskedLM
from llmtrain.objectives.vocab_loss import sum_cross_entropy
from llmtrain.train.contract import IGNORE
from llmtrain.train.sampler import Keyed


@pytest.fixture(scope="module")
def corpus():
    return datasets.Dataset.from_dict({"text": stdlib_docstrings()[:800]})


@pytest.fixture(scope="module")
def wordpiece(corpus, tmp_path_factory):
    cfg = TokenizerConfig(vocab_size=1000)
    return build_tokenizer(cfg, Family.bert, corpus, tmp_path_factory.mktemp("tok"), max_length=512)


@pytest.fixture(scope="module")
def keyed(corpus, wordpiece, tmp_path_factory):
    blocks = pack_blocks(corpus, wordpiece, 128, tmp_path_factory.mktemp("blocks"), "test")
    return Keyed(BlockDataset(blocks), seed=7)


@pytest.fixture(scope="module")
def examples(keyed):
    return [keyed[(0, i)] for i in range(min(len(keyed), 300))]


def test_masking_statistics(wordpiece, examples):
    objective = MaskedLM(ObjectiveConfig(), wordpiece)
    batch = objective.collate(examples)
    original = torch.stack([ex["input_ids"] for ex in examples])
    special = torch.isin(original, torch.tensor(wordpiece.all_special_ids))
    assert special.any()  # [CLS]/[SEP] are in the blocks: the rule below is really tested
    targets = batch["labels"] != IGNORE
    # Special tokens are never targets and never replaced.
    assert not (targets & special).any()
    assert torch.equal(batch["input_ids"][special], original[special])
    # 15 % of the other tokens are targets; labels hold the original token.
    share = targets.sum() / (~special).sum()
    assert abs(share.item() - 0.15) < 0.01
    assert torch.equal(batch["labels"][targets], original[targets])
    # Of the targets: 80 % [MASK], 10 % a random (non-special) token, 10 % unchanged.
    n = targets.sum().item()
    masked = (batch["input_ids"][targets] == wordpiece.mask_token_id).sum().item() / n
    unchanged = (batch["input_ids"][targets] == original[targets]).sum().item() / n
    assert abs(masked - 0.8) < 0.03 and abs(unchanged - 0.1) < 0.02
    assert abs(1 - masked - unchanged - 0.1) < 0.02
    assert not torch.isin(
        batch["input_ids"][targets],
        torch.tensor([i for i in wordpiece.all_special_ids if i != wordpiece.mask_token_id]),
    ).any()
    # Untouched positions stay as they were.
    assert torch.equal(batch["input_ids"][~targets], original[~targets])


def test_masks_follow_the_example_not_the_batch(wordpiece, keyed, examples):
    objective = MaskedLM(ObjectiveConfig(), wordpiece)
    whole = objective.collate(examples[:8])
    halves = [objective.collate(examples[:4]), objective.collate(examples[4:8])]
    assert torch.equal(whole["labels"], torch.cat([h["labels"] for h in halves]))
    again = objective.collate(examples[:8])
    assert torch.equal(whole["input_ids"], again["input_ids"])
    next_epoch = objective.collate([keyed[(1, i)] for i in range(8)])
    assert not torch.equal(whole["labels"], next_epoch["labels"])  # a new epoch, new masks


def test_sparse_mlm_head_equals_full_logits(wordpiece, examples):
    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(wordpiece),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    ).eval()
    objective = MaskedLM(ObjectiveConfig(), wordpiece)
    batch = objective.collate(examples[:4])
    loss_sum, n = objective.loss(model, batch)
    full_sum, full_n = sum_cross_entropy(
        model(input_ids=batch["input_ids"]).logits, batch["labels"]
    )
    assert n == full_n and torch.allclose(loss_sum, full_sum, rtol=1e-5)


def test_clm_loss_is_the_sum_over_next_tokens():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2, n_positions=16)
    ).eval()
    ids = torch.randint(0, 50, (3, 16))
    loss_sum, n = CausalLM().loss(model, {"input_ids": ids})
    assert n == 3 * 15
    mean = model(input_ids=ids, labels=ids).loss  # transformers' own shifted mean
    assert torch.allclose(loss_sum / n, mean, rtol=1e-5)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"mlm_probability": 1.5}, "objective.mlm_probability"),
        ({"mlm_probability": 0.0}, "objective.mlm_probability"),
        ({"mask_replace_prob": 0.9, "random_replace_prob": 0.2}, "exceeds 1"),
        ({"dupe_factor": 0, "name": ObjectiveName.mlm_nsp}, "objective.dupe_factor"),
        ({"whole_word_mask": True, "name": ObjectiveName.clm}, "objective.whole_word_mask"),
    ],
)
def test_objective_settings_that_cannot_work_are_named(settings, named):
    from llmtrain.config import Packing
    from llmtrain.errors import ConfigError
    from llmtrain.objectives import check_config

    cfg = ObjectiveConfig(**{"name": ObjectiveName.mlm, **settings})
    with pytest.raises(ConfigError, match=named):
        check_config(cfg, block_size=128, packing=Packing.concat)


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_chunked_vocabulary_loss_keeps_the_plain_loss_curve(family, monkeypatch):
    from llmtrain.objectives import vocab_loss

    vocab = 64  # tiny_gpt2's
    monkeypatch.setattr(vocab_loss, "CHUNK_ELEMENTS", 7 * vocab)  # 7 rows a chunk: several

    def train(chunked: bool) -> tuple[list[float], list[torch.Tensor]]:
        torch.manual_seed(0)
        if family == "gpt2":
            model, head = tiny_gpt2(), "lm_head"
        else:
            config = BertConfig(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
            )
            model, head = BertForMaskedLM(config), "cls.predictions"
        head = model.get_submodule(head)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)  # Adam would magnify rounding
        losses = []
        for step in range(5):
            g = torch.Generator().manual_seed(step)
            ids = torch.randint(0, vocab, (3, 16), generator=g)
            labels = ids.masked_fill(torch.rand(3, 16, generator=g) < 0.3, IGNORE)
            hidden = model.base_model(input_ids=ids).last_hidden_state
            if chunked:
                loss, n = vocab_loss.head_cross_entropy(head, hidden, labels)
            else:
                loss, n = sum_cross_entropy(head(hidden), labels)
            (loss / n).backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses, [p.detach() for p in model.parameters()]

    (plain, plain_weights), (chunked, chunked_weights) = train(False), train(True)
    head, hidden = torch.nn.Linear(32, vocab), torch.randn(3, 16, 32)
    labels = torch.randint(0, vocab, (3, 16))
    with torch.no_grad():  # evaluation: the loss alone, no gradient work
        assert torch.allclose(
            vocab_loss.head_cross_entropy(head, hidden, labels)[0],
            sum_cross_entropy(head(hidden), labels)[0],
        )
    assert chunked == pytest.approx(plain, rel=1e-5)
    for a, b in zip(plain_weights, chunked_weights, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
