"""The config schema: one dataclass per config group, validated by Hydra/OmegaConf at start-up.

A misspelt key or a value of the wrong type fails before any work is done. Each field's `help`
is its one-line documentation (the README's option tables come from it). Nothing else of
llmtrain is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def opt(default: Any = None, help: str = "", factory: Any = None) -> Any:
    """A dataclass field with a one-line help text."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


CACHE_DIR = "${oc.env:LLMTRAIN_CACHE,${oc.env:HOME,.}/.cache/llmtrain}"
CACHE_HELP = "where corpora, tokenizers and tokenised data are cached"


class Source(Enum):
    stdlib_docs = "stdlib_docs"
    text_files = "text_files"
    hf = "hf"


class TokenizerKind(Enum):
    auto = "auto"
    wordpiece = "wordpiece"
    bpe = "bpe"


class Family(Enum):
    bert = "bert"
    gpt2 = "gpt2"


class ObjectiveName(Enum):
    mlm = "mlm"
    clm = "clm"
    mlm_nsp = "mlm_nsp"
    mlm_sop = "mlm_sop"


class SentenceSplit(Enum):
    line = "line"
    punctuation = "punctuation"


class Schedule(Enum):
    linear = "linear"
    cosine = "cosine"
    constant = "constant"


class DecodeErrors(Enum):
    strict = "strict"
    replace = "replace"


class Strategy(Enum):
    single = "single"
    ddp = "ddp"
    fsdp = "fsdp"
    deepspeed = "deepspeed"


class Precision(Enum):
    no = "no"
    bf16 = "bf16"
    fp16 = "fp16"


@dataclass
class DataConfig:
    source: Source = opt(
        Source.stdlib_docs, "where the text comes from: stdlib_docs, text_files, hf"
    )
    train_files: list[str] = opt(help=".txt / .jsonl / .parquet files to train on", factory=list)
    validation_files: list[str] = opt(
        help="held-out files; empty: hold out a fraction", factory=list
    )
    validation_fraction: float = opt(0.05, "share of documents held out when no validation files")
    name: str | None = opt(None, "hub dataset name (source=hf)")
    config: str | None = opt(None, "hub dataset config (source=hf)")
    train_split: str = opt("train", "hub split to train on (source=hf)")
    validation_split: str | None = opt(None, "hub split to evaluate on; null: hold out a fraction")
    text_field: str = opt("text", "column holding the text (.jsonl, .parquet, hub)")
    sentence_split: SentenceSplit = opt(
        SentenceSplit.line,
        "sentences of a document for mlm_nsp/mlm_sop: line (each line), punctuation (. ! ?)",
    )
    decode_errors: DecodeErrors = opt(
        DecodeErrors.strict, "bytes that are not UTF-8 in .txt files: strict (stop), replace"
    )
    cache_dir: str = opt(CACHE_DIR, CACHE_HELP)


@dataclass
class TokenizerConfig:
    name_or_path: str | None = opt(
        None, "load this tokenizer (path or hub name) instead of training"
    )
    kind: TokenizerKind = opt(
        TokenizerKind.auto, "trained type: wordpiece, bpe (byte-level), auto (by model family)"
    )
    vocab_size: int = opt(8192, "vocabulary size of a trained tokenizer")
    min_frequency: int = opt(2, "minimum count for a merge / word piece")
    lowercase: bool | None = opt(None, "lower-case the text; null: yes for wordpiece, no for bpe")


@dataclass
class ModelConfig:
    family: Family = opt(
        Family.bert, "architecture of a fresh model: bert (encoder), gpt2 (decoder)"
    )
    name_or_path: str | None = opt(
        None, "start from these weights (local HF directory or hub name)"
    )
    from_run: str | None = opt(
        None, "start from a llmtrain run directory: its final/ model and tokenizer"
    )
    trust_remote_code: bool = opt(
        False, "let a loaded model or tokenizer run code from its repository (never by default)"
    )
    hidden_size: int = opt(128, "width of the hidden states")
    num_layers: int = opt(2, "transformer layers")
    num_heads: int = opt(2, "attention heads")
    intermediate_size: int = opt(512, "width of the feed-forward layer")
    max_position_embeddings: int = opt(512, "longest sequence the model can take")
    dropout: float = opt(0.1, "dropout on hidden states and attention")
    attention: str = opt("sdpa", "attention implementation: sdpa, eager")


@dataclass
class ObjectiveConfig:
    name: ObjectiveName = opt(
        ObjectiveName.mlm,
        "mlm (masked tokens), clm (next token), mlm_nsp (+ next sentence), mlm_sop (+ order)",
    )
    mlm_probability: float = opt(0.15, "share of tokens (or words) chosen as targets (mlm)")
    mask_replace_prob: float = opt(0.8, "share of targets replaced by [MASK] (mlm)")
    random_replace_prob: float = opt(0.1, "share of targets replaced by a random token (mlm)")
    whole_word_mask: bool = opt(False, "choose and replace whole words, all their sub-tokens (mlm)")
    short_seq_prob: float = opt(
        0.1, "mlm_nsp/mlm_sop: share of pairs cut to a random shorter length (as BERT)"
    )
    dupe_factor: int = opt(1, "mlm_nsp/mlm_sop: pairings of the corpus, each with other pairs")


@dataclass
class TrainerConfig:
    max_steps: int = opt(1000, "optimizer steps to train for")
    epochs: float | None = opt(None, "train this many passes over the data instead of max_steps")
    batch_size: int = opt(32, "sequences per device per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    block_size: int = opt(128, "tokens per packed training sequence")
    lr: float = opt(5e-4, "peak learning rate")
    warmup_steps: int = opt(100, "steps of linear warm-up")
    schedule: Schedule = opt(Schedule.linear, "decay after warm-up: linear, cosine, constant")
    weight_decay: float = opt(0.01, "AdamW weight decay (never on biases and norms)")
    max_grad_norm: float = opt(1.0, "clip the gradient norm to this; 0: no clipping")
    precision: Precision = opt(Precision.no, "mixed precision: no, bf16, fp16 (fp16: GPU only)")
    seed: int = opt(42, "seed for initialisation, data order and masking")
    log_every: int = opt(20, "steps between train rows in metrics.jsonl")
    eval_every: int = opt(200, "steps between evaluations (and one at the end)")
    eval_batches: int | None = opt(None, "cap on batches per evaluation; null: the whole split")
    save_every: int = opt(500, "steps between checkpoints (and one at the end)")
    keep_last: int = opt(2, "checkpoints kept; older ones go once a new one is complete")
    num_workers: int = opt(0, "DataLoader worker processes")
    group_by_length: bool = opt(
        True, "fine-tuning, sentence pairs: batch examples of similar length (less padding)"
    )
    resume: str = opt(
        "auto", "auto: continue from the run directory's newest good checkpoint; none; or a PATH"
    )
    overwrite: bool = opt(
        False, "with resume=none, start afresh in a run directory that has checkpoints"
    )
    allow_config_change: bool = opt(
        False, "resume although training-relevant settings differ from the checkpoint's"
    )
    max_bad_steps: int = opt(10, "consecutive non-finite losses or gradients before the run stops")
    early_stopping: int | None = opt(
        None, "stop after this many evaluations without a better main metric (fine-tuning)"
    )


@dataclass
class TaskConfig:
    name: str = opt("sst2", "cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli, or custom")
    data_dir: str | None = opt(None, "GLUE: read GLUE's own TSV files here instead of the hub")
    train_file: str | None = opt(None, "custom: training file (.csv, .tsv, .jsonl, .parquet)")
    validation_file: str | None = opt(None, "custom: evaluation file")
    test_file: str | None = opt(None, "custom: file to predict (labels optional)")
    text_fields: list[str] = opt(help="custom: one or two text columns", factory=lambda: ["text"])
    label_field: str = opt("label", "custom: the label column")
    labels: list[str] = opt(
        help="custom: the label set in id order; empty: read from train", factory=list
    )
    num_labels: int | None = opt(None, "custom: 1 for regression; else checked against the labels")
    max_length: int = opt(128, "tokens per example; longer inputs are truncated")
    max_train_examples: int | None = opt(None, "use only the first N training examples")
    cache_dir: str = opt(CACHE_DIR, CACHE_HELP)


@dataclass
class DistributedConfig:
    strategy: Strategy = opt(
        Strategy.single, "single (data-parallel when launched as several), ddp, fsdp, deepspeed"
    )
    find_unused_parameters: bool = opt(False, "ddp: let DDP look for parameters without gradients")
    fsdp_state_dict: str = opt("full", "fsdp: checkpoint state dicts full (on rank 0) or sharded")
    zero_stage: int = opt(2, "deepspeed: ZeRO stage, 2 or 3")


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


# Keys that may change between a checkpoint and its resumption without changing what is trained.
RESUME_FREE_KEYS = {
    "trainer.max_steps",
    "trainer.epochs",
    "trainer.log_every",
    "trainer.eval_every",
    "trainer.eval_batches",
    "trainer.save_every",
    "trainer.keep_last",
    "trainer.num_workers",
    "trainer.early_stopping",
    "trainer.resume",
    "trainer.overwrite",
    "trainer.allow_config_change",
    "trainer.max_bad_steps",
    "data.cache_dir",
    "task.cache_dir",
}

GROUPS = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "trainer": TrainerConfig,
    "task": TaskConfig,
    "distributed": DistributedConfig,
}


def option_tables() -> str:
    """Markdown tables of every group's keys, defaults and help (the README embeds this)."""
    from dataclasses import MISSING, fields

    out = []
    for group, schema in GROUPS.items():
        out += [f"**`{group}`**", "", "| key | default | meaning |", "|---|---|---|"]
        for f in fields(schema):
            default = f.default if f.default is not MISSING else f.default_factory()
            if isinstance(default, Enum):
                default = default.value
            shown = "null" if default is None else str(default).replace("|", "\\|")
            out.append(f"| `{group}.{f.name}` | `{shown}` | {f.metadata['help']} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


@dataclass
class FinetuneConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass
class EvaluateConfig:
    """A task's metrics and predictions (task=…), or a language model's perplexity (data=…)."""

    task: TaskConfig | None = None
    data: DataConfig | None = None
    objective: ObjectiveConfig | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def register_schemas() -> None:
    """Register the schemas with Hydra's ConfigStore (called by the CLI before composing)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="pretrain_schema", node=PretrainConfig)
    cs.store(name="finetune_schema", node=FinetuneConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
