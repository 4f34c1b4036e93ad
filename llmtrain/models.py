"""Models: a fresh BERT / GPT-2 from ModelConfig, or existing weights from a run or a path.

One config builder serves every head: masked LM, causal LM, sequence classification, token
classification and question answering.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_PRETRAINING_MAPPING_NAMES,
    MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
)

from llmtrain.config import Family, ModelConfig, ObjectiveName
from llmtrain.errors import ConfigError
from llmtrain.objectives import PAIRED

# Which family each objective trains, and the auto class that loads existing weights for it.
# The pair objectives need BERT's pretraining heads (MLM + a two-way head on [CLS]).
_FAMILY = {
    ObjectiveName.mlm: Family.bert,
    ObjectiveName.clm: Family.gpt2,
    **dict.fromkeys(PAIRED, Family.bert),
}
_AUTO = {
    ObjectiveName.mlm: AutoModelForMaskedLM,
    ObjectiveName.clm: AutoModelForCausalLM,
    **dict.fromkeys(PAIRED, AutoModelForPreTraining),
}
_AUTO_NAMES = {
    ObjectiveName.mlm: MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    ObjectiveName.clm: MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    **dict.fromkeys(PAIRED, {"bert": "BertForPreTraining"}),
}
MASKED_TYPES = MODEL_FOR_MASKED_LM_MAPPING_NAMES
_KIND = {
    ObjectiveName.mlm: "an encoder (model.family=bert)",
    ObjectiveName.clm: "a decoder (model.family=gpt2)",
    **dict.fromkeys(PAIRED, "a BERT model (model.family=bert)"),
}
_INFERENCE = {ObjectiveName.mlm: "fill-mask", ObjectiveName.clm: "generate"}
_FRESH = {
    (Family.bert, "mlm"): BertForMaskedLM,
    (Family.gpt2, "clm"): GPT2LMHeadModel,
    **{(Family.bert, name.value): BertForPreTraining for name in PAIRED},
    (Family.bert, "classify"): BertForSequenceClassification,
    (Family.gpt2, "classify"): GPT2ForSequenceClassification,
    (Family.bert, "tag"): BertForTokenClassification,
    (Family.bert, "qa"): BertForQuestionAnswering,
}
_HEADS = {
    "classify": AutoModelForSequenceClassification,
    "tag": AutoModelForTokenClassification,
    "qa": AutoModelForQuestionAnswering,
}
# The architectures whose weights hold each trained head (a pretraining run's BertForPreTraining
# holds a masked-LM head), and what the head is called in messages.
_TRAINED = {
    "classify": ({*MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values()}, "classification"),
    "tag": ({*MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES.values()}, "token classification"),
    "qa": ({*MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES.values()}, "question answering"),
    "mlm": (
        {
            *MODEL_FOR_MASKED_LM_MAPPING_NAMES.values(),
            *MODEL_FOR_PRETRAINING_MAPPING_NAMES.values(),
        },
        "masked language model",
    ),
    "clm": ({*MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()}, "causal language model"),
}
# Heads that read every token (word tags, answer spans) want an encoder's two-sided context;
# the QA "no answer" position is the first token, which only an encoder's [CLS] is fit for.
_ENCODER_HEADS = {"tag": "token classification", "qa": "question answering"}


def source(cfg: ModelConfig) -> str | None:
    """Where existing weights come from: a run's final/ (model.from_run, the run directory or
    its final/), a path or hub name (model.name_or_path), or nowhere (a fresh model)."""
    if cfg.from_run and cfg.name_or_path:
        raise ConfigError("give model.from_run or model.name_or_path, not both")
    if cfg.from_run:
        final = _final(cfg.from_run)
        if not (final / "config.json").is_file():
            raise ConfigError(f"model.from_run={cfg.from_run}: no finished model at {final}")
        return str(final)
    if cfg.name_or_path:
        _check_local(cfg.name_or_path)
    return cfg.name_or_path


def _final(run_dir: str) -> Path:
    """Where a run's model is, <run>/final/, given the run directory or final/ itself."""
    given = Path(run_dir).expanduser()
    return given if given.name == "final" else given / "final"


def _check_local(name_or_path: str) -> None:
    """A name that can only be a path (not a hub id `name` or `org/name`) must exist here."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name_or_path={name_or_path}: no config.json in {path}")
        return
    looks_local = name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1
    if path.exists() or looks_local:
        what = "is a file, not a model directory" if path.exists() else "no such directory"
        raise ConfigError(f"model.name_or_path={name_or_path}: {what}")


def check_config(cfg: ModelConfig) -> None:
    """What the model settings alone show cannot work (before any data work)."""
    source(cfg)
    for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"model.{key}={getattr(cfg, key)} must be positive")
    if cfg.max_position_embeddings <= 0:
        raise ConfigError(
            f"model.max_position_embeddings={cfg.max_position_embeddings} must be positive"
        )
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"model.dropout={cfg.dropout} must be in [0, 1)")
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(
            f"model.hidden_size={cfg.hidden_size} is not divisible by "
            f"model.num_heads={cfg.num_heads}"
        )


def check_length(cfg: ModelConfig, length: int, key: str) -> None:
    """`length` tokens (the setting `key`) must fit the model's positions."""
    path = source(cfg)
    if path:
        positions = int(pretrained_config(path, cfg.trust_remote_code).max_position_embeddings)
        whose = f"model '{path}' takes"
    else:
        positions, whose = (
            cfg.max_position_embeddings,
            "the model takes (model.max_position_embeddings)",
        )
    if length > positions:
        raise ConfigError(f"{key}={length} is longer than the {positions} positions {whose}")


def require_trained(path: str, head: str, trust_remote_code: bool = False) -> None:
    """Refuse to score a model whose `head` ("classify", "tag", "qa", "mlm", "clm") was never
    trained: its saved architecture does not have it, so it would be initialised at random."""
    architectures = pretrained_config(path, trust_remote_code).architectures or []
    names, what = _TRAINED[head]
    if architectures and not names & set(architectures):
        raise ConfigError(
            f"model '{path}' holds a {architectures[0]}, with no trained {what} head: "
            "its scores would come from a randomly initialised one"
        )


def run_model(run_dir: str, objective: ObjectiveName) -> tuple[PreTrainedModel, str]:
    """A finished run's final/ model (and its path) for inference; it must have the language
    modelling head of `objective` (llmtrain fill-mask: mlm, generate: clm)."""
    final = _final(run_dir)
    if not (final / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not a finished llmtrain run: no model in {final}")
    architecture = (pretrained_config(str(final)).architectures or ["?"])[0]
    if architecture not in _AUTO_NAMES[objective].values():
        hint = f"needs a run of llmtrain pretrain objective={objective.value}"
        for other, names in _AUTO_NAMES.items():
            if other is not objective and architecture in names.values():
                hint = f"use llmtrain {_INFERENCE[other]}"
        raise ConfigError(f"{run_dir} holds a {architecture} model: {hint}")
    return _load(_AUTO[objective], str(final), ModelConfig()).eval(), str(final)


def pretrained_config(name_or_path: str, trust_remote_code: bool = False) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if Path(name_or_path).expanduser().is_dir():
            raise ConfigError(f"model '{name_or_path}': cannot load its config: {e}") from e
        raise ConfigError(
            f"model '{name_or_path}' is no local directory, and the hub cannot give it "
            f"({str(e).splitlines()[0]})"
        ) from e


def check_objective(cfg: ModelConfig, objective: ObjectiveName) -> None:
    """Fail before any data work when the objective cannot train this model."""
    path = source(cfg)
    if path:
        model_type = pretrained_config(path, cfg.trust_remote_code).model_type
        if model_type not in _AUTO_NAMES[objective]:
            raise ConfigError(
                f"model '{path}' is a '{model_type}' model; "
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
    """A language model the objective can train, sized to the tokenizer's vocabulary."""
    check_objective(cfg, objective)
    path = source(cfg)
    if path:
        model = _load(_AUTO[objective], path, cfg)
        if len(tokenizer) > model.config.vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(tokenizer)} tokens but the model '{path}' only "
                f"{model.config.vocab_size} embeddings"
            )
        return model
    return _FRESH[cfg.family, objective.value](_fresh_config(cfg, tokenizer))


def build_classifier(
    cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, labels: list[str]
) -> PreTrainedModel:
    """A sequence classifier (a regression head when `labels` is empty) on existing weights or
    fresh, with the label names saved in its config."""
    head = _label_config(labels or ["score"])
    head["problem_type"] = "single_label_classification" if labels else "regression"
    model = build_head(cfg, tokenizer, "classify", **head)
    # GPT-2 finds each sequence's last token by its padding id; BERT needs it for nothing else.
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def build_tagger(
    cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, labels: list[str]
) -> PreTrainedModel:
    """A token classifier with the tag names saved in its config."""
    return build_head(cfg, tokenizer, "tag", **_label_config(labels))


def check_head(cfg: ModelConfig, head: str) -> None:
    """Heads that need an encoder ("tag", "qa") refuse a decoder, before any data work."""
    if head not in _ENCODER_HEADS:
        return
    path = source(cfg)
    model_type = pretrained_config(path, cfg.trust_remote_code).model_type if path else None
    if (path and model_type not in MASKED_TYPES) or (not path and cfg.family is not Family.bert):
        what = f"model '{path}' is a '{model_type}' model" if path else "model.family=gpt2"
        raise ConfigError(
            f"{_ENCODER_HEADS[head]} needs an encoder (a BERT-like model), but {what}"
        )


def build_head(
    cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, head: str, **config
) -> PreTrainedModel:
    """A model with a task head ("classify", "tag", "qa") on existing weights or fresh;
    `config` goes into the model's config (label names, problem type)."""
    check_head(cfg, head)
    path = source(cfg)
    if path:
        return _load(_HEADS[head], path, cfg, **config)
    return _FRESH[cfg.family, head](_fresh_config(cfg, tokenizer, **config))


def _label_config(labels: list[str]) -> dict:
    id2label = dict(enumerate(labels))
    return {
        "num_labels": len(labels),
        "id2label": id2label,
        "label2id": {name: i for i, name in id2label.items()},
    }


def max_positions(model: PreTrainedModel) -> int:
    """The longest sequence the model takes (GPT-2's n_positions maps to this name too)."""
    return int(model.config.max_position_embeddings)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _fresh_config(
    cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, **extra
) -> PretrainedConfig:
    check_config(cfg)
    if cfg.family is Family.bert:
        return BertConfig(
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
            **extra,
        )
    eos = tokenizer.eos_token_id
    return GPT2Config(
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
        **extra,
    )


def _load(auto_class, path: str, cfg: ModelConfig, **kwargs) -> PreTrainedModel:
    # transformers 5 reloads in the checkpoint's dtype by default; training wants float32.
    try:
        return auto_class.from_pretrained(
            path,
            dtype=torch.float32,
            attn_implementation=cfg.attention,
            trust_remote_code=cfg.trust_remote_code,
            **kwargs,
        )
    except ValueError as e:
        raise ConfigError(f"model '{path}': {str(e).splitlines()[0]}") from e
