"""llmtrain.objectives.masked: MLM masking statistics on real tokenizer output, masks that
follow the example, and the sparse MLM head equal to full logits."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from conftest import tiny_bert

from llmtrain.config import Family, ObjectiveConfig, TokenizerConfig
from llmtrain.data.packing import PackedDataset
from llmtrain.data.sources import stdlib_docstrings
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.data.tokens import ArrayTokens
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
def keyed(corpus, wordpiece):
    ids = [i for doc in wordpiece(list(corpus["text"]))["input_ids"] for i in doc]
    return Keyed(PackedDataset(ArrayTokens(np.array(ids, dtype=np.uint16)), 128), seed=7)


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
    model = tiny_bert(vocab_size=len(wordpiece))
    objective = MaskedLM(ObjectiveConfig(), wordpiece)
    batch = objective.collate(examples[:4])
    loss_sum, n = objective.loss(model, batch)
    full_sum, full_n = sum_cross_entropy(
        model(input_ids=batch["input_ids"]).logits, batch["labels"]
    )
    assert n == full_n and torch.allclose(loss_sum, full_sum, rtol=1e-5)
