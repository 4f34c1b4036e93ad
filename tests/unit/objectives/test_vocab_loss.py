"""llmtrain.objectives.vocab_loss: the chunked vocabulary loss keeps the plain loss curve."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_gpt2
from transformers import BertConfig, BertForMaskedLM

from llmtrain.objectives.vocab_loss import sum_cross_entropy
from llmtrain.train.contract import IGNORE


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
