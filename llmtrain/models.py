"""Models: a fresh BERT / GPT-2 from ModelConfig, or existing weights from a path or hub name."""

from __future__ import annotations

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from llmtrain.config import Family, ModelConfig, ObjectiveName
from llmtrain.errors import ConfigError

# Which family each objective trains, and the auto class that loads existing weights for it.
_FAMILY = {ObjectiveName.mlm: Family.bert, ObjectiveName.clm: Family.gpt2}
_AUTO = {ObjectiveName.mlm: AutoModelForMaskedLM, ObjectiveName.clm: AutoModelForCausalLM}
_AUTO_NAMES = {
    ObjectiveName.mlm: MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    ObjectiveName.clm: MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
}
_KIND = {
    ObjectiveName.mlm: "an encoder (model.family=bert)",
    ObjectiveName.clm: "a decoder (model.family=gpt2)",
}


def check_objective(cfg: ModelConfig, objective: ObjectiveName) -> None:
    """Fail before any data work when the objective cannot train this model."""
    if cfg.name_or_path:
        model_type = _pretrained_config(cfg.name_or_path).model_type
        if model_type not in _AUTO_NAMES[objective]:
            raise ConfigError(
                f"model.name_or_path={cfg.name_or_path} is a '{model_type}' model; "
                f"objective={objective.value} needs {_KIND[objective]}"
            )
    elif cfg.family is not _FAMILY[objective]:
        raise ConfigError(
            f"objective={objective.value} needs {_KIND[objective]}, but the model is "
            f"model.family={cfg.family.value}"
        )


def build_model(
    cfg: ModelConfig, objective: ObjectiveName, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """A model the objective can train, sized to the tokenizer's vocabulary."""
    if cfg.name_or_path:
        model = _load(cfg, objective)
        if len(tokenizer) > model.config.vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(tokenizer)} tokens but model.name_or_path="
                f"{cfg.name_or_path} only {model.config.vocab_size} embeddings"
            )
        return model
    check_objective(cfg, objective)
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(
            f"model.hidden_size={cfg.hidden_size} is not divisible by "
            f"model.num_heads={cfg.num_heads}"
        )
    if cfg.family is Family.bert:
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings,
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            pad_token_id=tokenizer.pad_token_id,
            attn_implementation=cfg.attention,
        )
        return BertForMaskedLM(config)
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=cfg.hidden_size,
        n_layer=cfg.num_layers,
        n_head=cfg.num_heads,
        n_inner=cfg.intermediate_size,
        n_positions=cfg.max_position_embeddings,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation=cfg.attention,
    )
    return GPT2LMHeadModel(config)


def max_positions(model: PreTrainedModel) -> int:
    """The longest sequence the model takes (GPT-2's n_positions maps to this name too)."""
    return int(model.config.max_position_embeddings)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _pretrained_config(name_or_path: str):
    try:
        return AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"model.name_or_path={name_or_path}: cannot load a model config: {e}"
        ) from e


def _load(cfg: ModelConfig, objective: ObjectiveName) -> PreTrainedModel:
    check_objective(cfg, objective)
    # transformers 5 reloads in the checkpoint's dtype by default; training wants float32.
    return _AUTO[objective].from_pretrained(
        cfg.name_or_path, dtype=torch.float32, attn_implementation=cfg.attention
    )
