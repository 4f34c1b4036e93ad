"""llmtrain.objectives.causal: the CLM loss is the sum over next tokens, as (sum, count)."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llmtrain.objectives.causal import CausalLM


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
