"""llmtrain.train.optim: weight decay spares biases and norms."""

from __future__ import annotations

from llmtrain.config import TrainerConfig


def test_weight_decay_spares_biases_and_norms():
    from transformers import BertConfig, BertForMaskedLM

    from llmtrain.train.optim import build_optimizer

    model = BertForMaskedLM(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    decay, no_decay = build_optimizer(model, TrainerConfig(weight_decay=0.1), "cpu").param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(
        names[id(p)].endswith("weight") and "LayerNorm" not in names[id(p)] for p in decay["params"]
    )
    assert any("LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert all(
        names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"]
    )
