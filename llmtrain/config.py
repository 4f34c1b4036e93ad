"""The config schema: one dataclass per config group, validated by Hydra/OmegaConf at start-up.

A misspelt key or a value of the wrong type fails before any work is done. Defaults live here
and only here (a YAML option holds what differs). Each field's `help` is its one-line
documentation (docs/configuration.md's tables and `COMMAND --help` come from it, llmtrain.help).
Besides the dataclasses: which given values win over rival defaults (`settle`), and which keys a
resumption may change (`resume_free_keys`). The task kinds' schemas live with their kinds
(llmtrain.tasks); of llmtrain, only its error types are imported here.

Longer than 400 lines on purpose, and still one job: the whole schema in one file is what a user
reads to learn every option. It imports no torch (`llmtrain --help` and config errors stay fast).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from llmtrain.errors import ConfigError


def opt(default: Any = None, help: str = "", factory: Any = None, resume_free: bool = False) -> Any:
    """A dataclass field with a one-line help text. `resume_free`: the key may change between a
    checkpoint and its resumption without changing what is trained (resume_free_keys)."""
    metadata = {"help": help, "resume_free": resume_free}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


CACHE_DIR = "${oc.env:LLMTRAIN_CACHE,${oc.env:HOME,.}/.cache/llmtrain}"
CACHE_HELP = "where corpora, tokenizers and tokenised data are cached"


class Source(Enum):
    stdlib_docs = "stdlib_docs"
    text_files = "text_files"
    hf = "hf"
    mixture = "mixture"


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


class Packing(Enum):
    concat = "concat"
    document = "document"


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


class Tracker(Enum):
    tensorboard = "tensorboard"
    wandb = "wandb"
    mlflow = "mlflow"


class WandbMode(Enum):
    offline = "offline"
    online = "online"


class ConsoleMode(Enum):
    auto = "auto"
    plain = "plain"
    quiet = "quiet"


FILES_HELP = "files, globs or directories: .txt, .jsonl (either also .gz, .zst), .parquet"


@dataclass
class MixtureSource:
    """One named source of data=mixture."""

    files: list[str] = opt(help=FILES_HELP, factory=list)
    weight: float = opt(1.0, "its share of the training examples (weights are normalised)")
    validation_files: list[str] = opt(
        help="its held-out files; empty: hold out data.validation_fraction", factory=list
    )


@dataclass
class DataConfig:
    source: Source = opt(
        Source.stdlib_docs, "where the text comes from: stdlib_docs, text_files, hf, mixture"
    )
    train_files: list[str] = opt(help=f"to train on: {FILES_HELP}", factory=list)
    validation_files: list[str] = opt(
        help="held-out files; empty: hold out a fraction", factory=list
    )
    sources: dict[str, Any] = opt(
        help="data=mixture: named sources, e.g. +data.sources.web.files=[web/*.jsonl] "
        "+data.sources.web.weight=0.7",
        factory=dict,
    )
    validation_fraction: float = opt(0.05, "share of documents held out when no validation files")
    name: str | None = opt(None, "hub dataset name (source=hf)")
    config: str | None = opt(None, "hub dataset config (source=hf)")
    train_split: str = opt("train", "hub split to train on (source=hf)")
    validation_split: str | None = opt(None, "hub split to evaluate on; null: hold out a fraction")
    streaming: bool = opt(
        False, "read the corpus as a stream while training: nothing downloaded ahead or prepared"
    )
    stream_validation_blocks: int = opt(
        256, "streaming: blocks of held-out text read at the start to evaluate on"
    )
    text_field: str = opt("text", "column holding the text (.jsonl, .parquet, hub)")
    sentence_split: SentenceSplit = opt(
        SentenceSplit.line,
        "sentences of a document for mlm_nsp/mlm_sop: line (each line), punctuation (. ! ?)",
    )
    decode_errors: DecodeErrors = opt(
        DecodeErrors.strict,
        "bytes that are not UTF-8 in .txt and .jsonl files: strict (stop), replace",
    )
    packing: Packing = opt(
        Packing.concat,
        "concat: attention crosses documents in a block; document: each token sees its own "
        "document only",
    )
    num_proc: int | None = opt(
        None,
        "processes that tokenise while preparing; null: all cores (shared by a torchrun's "
        "processes on a machine), one per 16 MB of input at most",
        resume_free=True,
    )
    shard_mb: float = opt(
        64.0,
        "input per prepared shard at most (MiB; a smaller file is cut in 16): the unit of "
        "parallel work and of resuming",
        resume_free=True,
    )
    prepare_shard: str | None = opt(
        None,
        "I/N: llmtrain prepare makes share I of N only (jobs of a SLURM array)",
        resume_free=True,
    )
    cache_dir: str = opt(CACHE_DIR, CACHE_HELP, resume_free=True)


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
    train_sample: int = opt(
        100_000_000, "bytes of training text a new tokenizer learns from (the first of each shard)"
    )


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
    max_steps: int = opt(
        1000, "optimizer steps to train for (given: wins over a default epochs)", resume_free=True
    )
    budget: str | None = opt(
        None,
        "wall-clock budget (20m, 1h30m, 90s, seconds): replaces max_steps and epochs",
        resume_free=True,
    )
    epochs: float | None = opt(
        None, "train this many passes over the data instead of max_steps", resume_free=True
    )
    batch_size: int = opt(32, "sequences per device per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    block_size: int = opt(128, "tokens per packed training sequence")
    lr: float = opt(5e-4, "peak learning rate")
    warmup_steps: int | None = opt(
        None, "steps of linear warm-up; null: trainer.warmup_ratio of the run's steps"
    )
    warmup_ratio: float = opt(0.1, "warm-up as a share of the run's steps (warmup_steps unset)")
    schedule: Schedule = opt(Schedule.linear, "decay after warm-up: linear, cosine, constant")
    weight_decay: float = opt(0.01, "AdamW weight decay (never on biases and norms)")
    max_grad_norm: float = opt(1.0, "clip the gradient norm to this; 0: no clipping")
    precision: Precision = opt(Precision.no, "mixed precision: no, bf16, fp16 (fp16: GPU only)")
    compile: bool = opt(
        False,
        "torch.compile model and loss (inductor); the first step's time includes it",
        resume_free=True,
    )
    seed: int = opt(42, "seed for initialisation, data order and masking")
    log_every: int = opt(20, "steps between train rows in metrics.jsonl", resume_free=True)
    eval_every: int = opt(200, "steps between evaluations (and one at the end)", resume_free=True)
    eval_batches: int | None = opt(
        None, "cap on batches per evaluation; null: the whole split", resume_free=True
    )
    save_every: int = opt(500, "steps between checkpoints (and one at the end)", resume_free=True)
    keep_last: int = opt(
        2, "checkpoints kept; older ones go once a new one is complete", resume_free=True
    )
    num_workers: int = opt(0, "DataLoader worker processes", resume_free=True)
    group_by_length: bool = opt(
        True, "fine-tuning, sentence pairs: batch examples of similar length (less padding)"
    )
    resume: str = opt(
        "auto",
        "auto: continue from the run directory's newest good checkpoint; none; or a PATH",
        resume_free=True,
    )
    overwrite: bool = opt(
        False,
        "with resume=none, start afresh in a run directory that has checkpoints",
        resume_free=True,
    )
    allow_config_change: bool = opt(
        False,
        "resume although training-relevant settings differ from the checkpoint's",
        resume_free=True,
    )
    max_bad_steps: int = opt(
        10, "consecutive non-finite losses or gradients before the run stops", resume_free=True
    )
    early_stopping: int | None = opt(
        None,
        "stop after this many evaluations without a better main metric (fine-tuning)",
        resume_free=True,
    )


@dataclass
class DistributedConfig:
    strategy: Strategy = opt(
        Strategy.single, "single (data-parallel when launched as several), ddp, fsdp, deepspeed"
    )
    find_unused_parameters: bool = opt(False, "ddp: let DDP look for parameters without gradients")
    fsdp_state_dict: str = opt("full", "fsdp: checkpoint state dicts full (on rank 0) or sharded")
    zero_stage: int = opt(2, "deepspeed: ZeRO stage, 2 or 3")


@dataclass
class LoggerConfig:
    trackers: list[Tracker] = opt(
        help="experiment trackers besides metrics.jsonl: tensorboard, wandb, mlflow (any of them)",
        factory=list,
        resume_free=True,
    )
    project: str = opt(
        "llmtrain", "project / experiment name the trackers file the run under", resume_free=True
    )
    wandb_mode: WandbMode = opt(
        WandbMode.offline,
        "wandb: offline (files in <run>/wandb; `wandb sync` later), online",
        resume_free=True,
    )
    mlflow_tracking_uri: str | None = opt(
        None,
        "mlflow: tracking server or store; null: a local store, <run>/mlflow.db",
        resume_free=True,
    )
    console: ConsoleMode = opt(
        ConsoleMode.auto,
        "auto: progress bar on a terminal, plain lines otherwise; plain; quiet (summary, warnings)",
        resume_free=True,
    )


# GLUE's tasks in the leaderboard's order: the one list of their names. The GLUE registry
# (llmtrain/tasks/glue.py) holds a spec for each, in this order; the names live here because the
# schema, which `llmtrain --help` imports without torch or datasets, defaults glue.tasks to them.
GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")


@dataclass
class GlueConfig:
    tasks: list[str] = opt(
        help="the GLUE tasks the suite fine-tunes on, in order", factory=lambda: list(GLUE_TASKS)
    )
    data_dir: str | None = opt(
        None,
        "GLUE's distributed layout (CoLA/, SST-2/, …, each with train.tsv, dev.tsv); null: hub",
    )


@dataclass
class ExpectedMetric:
    value: float | None = opt(None, "the value measured by running the recipe; null: not yet")
    tolerance: float = opt(0.0, "how far a reproduction may land from value, either side")


@dataclass
class RecipeConfig:
    name: str = opt("", "the recipe's name (its file in configs/recipe/)")
    command: str = opt("pretrain", "the command it is for: pretrain or finetune")
    device: str = opt("cpu", "what it is sized for: cpu (run by make recipes) or gpu")
    measured: str = opt("not yet measured", "when, where and in how long the figures were measured")
    starts_from: str | None = opt(
        None, "the recipe whose final/ model this one starts from (model.name_or_path=…/final)"
    )
    requires: list[str] = opt(
        help="keys the user gives (data paths, a model directory): refused at start if unset",
        factory=list,
    )
    expected: dict[str, ExpectedMetric] = opt(
        help="summary.json key: its expected value and tolerance", factory=dict
    )


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    recipe: RecipeConfig | None = None


# Settings of which a command line gives at most one: the one given wins over the others'
# defaults (as transformers.Trainer's max_steps overrides num_train_epochs); two given conflict.
LENGTH_KEYS = ("trainer.max_steps", "trainer.epochs", "trainer.budget")  # how long to train
RIVALS = (LENGTH_KEYS, ("trainer.warmup_steps", "trainer.warmup_ratio"))
# What giving a key clears: the rival defaults it wins over (budget and epochs win already).
_CLEARS = {"trainer.max_steps": "trainer.epochs", "trainer.warmup_ratio": "trainer.warmup_steps"}


def settle(cfg: Any, overrides: list[str]) -> None:
    """Let the values given on the command line (`overrides`, Hydra's) win over defaults of the
    settings they compete with, in the composed config `cfg` (before it is converted); two
    rival values given at once are an error naming both."""
    given = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if value and value != "null":
            given[key] = value
    for rivals in RIVALS:
        both = [f"{key}={given[key]}" for key in rivals if key in given]
        if len(both) > 1:
            raise ConfigError(f"{' and '.join(both)} are both given: give one of them")
    for key, cleared in _CLEARS.items():
        group, name = cleared.split(".")
        if key in given and group in cfg:
            cfg[group][name] = None


GROUPS = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "trainer": TrainerConfig,
    "distributed": DistributedConfig,
    "logger": LoggerConfig,
    "glue": GlueConfig,
    "recipe": RecipeConfig,
}


def resume_free_keys(extra: Iterable[tuple[str, type]] = ()) -> frozenset[str]:
    """Keys that may change between a checkpoint and its resumption without changing what is
    trained (how long and how often, where caches and trackers are, what SFT's evaluations
    generate): `group.key` of every field marked `resume_free` in the group schemas (GROUPS) and
    in `extra`'s (group, schema) pairs (the task kinds': llmtrain.tasks.resume_free_keys)."""
    return frozenset(
        f"{group}.{f.name}"
        for group, schema in [*GROUPS.items(), *extra]
        for f in fields(schema)
        if f.metadata.get("resume_free")
    )


def _open_node() -> Any:
    """The composed `task` group before its kind's schema types it: open to any key (Hydra
    closes every other node), so that `task.KEY=…` reaches `llmtrain.tasks.typed`,
    which names a key the kind does not take."""
    from omegaconf import OmegaConf

    return OmegaConf.create({}, flags={"struct": False})


@dataclass
class FinetuneConfig:
    # A task kind's schema (llmtrain.tasks.typed types it from the composed values)
    task: Any = field(default_factory=_open_node)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    recipe: RecipeConfig | None = None


@dataclass
class GlueSuiteConfig:
    """`llmtrain glue`: the fine-tuning settings shared by every task, and the suite's own."""

    glue: GlueConfig = field(default_factory=GlueConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class EvaluateConfig:
    """A task's metrics and predictions (task=…), or a language model's perplexity (data=…)."""

    task: Any = field(default_factory=_open_node)  # as FinetuneConfig's; None: no task
    data: DataConfig | None = None
    objective: ObjectiveConfig | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class TokenizerTrainConfig:
    """`llmtrain tokenizer train`: the tokenizer `pretrain` would train, on its own."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # family picks the kind; positions
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class GenerateConfig:
    """`llmtrain generate RUN_DIR key=value…` (parsed without Hydra: no run directory)."""

    prompt: str = opt("", "text the model continues; empty: from the start-of-text token")
    max_new_tokens: int = opt(50, "tokens to generate")
    temperature: float = opt(0.8, "sampling temperature; 0: greedy decoding")
    top_k: int = opt(50, "sample from the k most likely tokens; 0: no limit")
    top_p: float = opt(0.95, "sample from the smallest set of tokens with this probability")
    num_samples: int = opt(1, "continuations to generate")
    seed: int = opt(42, "seed for sampling")


@dataclass
class FillMaskConfig:
    """`llmtrain fill-mask RUN_DIR text="… [MASK] …"` (parsed without Hydra)."""

    text: str = opt("", "text with one or more [MASK] tokens")
    top_k: int = opt(5, "predictions shown per mask")


def register_schemas() -> None:
    """Register the schemas with Hydra's ConfigStore (called by the CLI before composing)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="pretrain_schema", node=PretrainConfig)
    cs.store(name="finetune_schema", node=FinetuneConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="tokenizer_train_schema", node=TokenizerTrainConfig)
    cs.store(name="glue_schema", node=GlueSuiteConfig)
