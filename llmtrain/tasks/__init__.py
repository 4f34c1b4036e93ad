"""Task kinds: what `llmtrain finetune` and `llmtrain evaluate` train and score, behind one
`Task` protocol.

A kind is one module: `llmtrain.tasks.<kind>` (classification, tagging, qa, sft) or any
importable module named by its dotted path. It exports
- `SCHEMA`, its config dataclass (a subclass of `TaskConfig`): every key the kind takes, with
  its default and help; a key it does not take is an error at start, naming the key;
- `HEAD`, the model head it trains ("classify", "tag", "qa", "clm": llmtrain.models);
- `check(cfg, model)`: what the task's and model's settings alone show, before any data work;
- `load(cfg, cache_dir, training, model_labels, seed) -> Task`: the task with its files read.
A task config, `configs/task/<name>.yaml`, names its kind (`kind: tagging`) and holds only the
values that differ from the schema's defaults. Adding a kind is its module and a config file.

This module and the kinds' schemas import no torch: `llmtrain finetune --help` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmtrain.config import CACHE_DIR, CACHE_HELP, ModelConfig, opt
from llmtrain.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    import datasets
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmtrain.config import TrainerConfig
    from llmtrain.rundir import RunDir
    from llmtrain.train.contract import Objective
    from llmtrain.train.evaluator import Evaluation

# The kinds that ship with llmtrain; any other kind is a dotted module path.
KINDS = ("classification", "tagging", "qa", "sft")


@dataclass
class TaskConfig:
    """The keys every kind has; a kind's schema adds its own (and may change these defaults)."""

    kind: str = opt("classification", "the task's kind: " + ", ".join(KINDS) + ", or a module")
    name: str = opt("", "the task's name (its config file in configs/task/)")
    max_length: int = opt(128, "tokens per example; longer inputs are truncated")
    cache_dir: str = opt(CACHE_DIR, CACHE_HELP, resume_free=True)


class Task(Protocol):
    """A task with its files read. The commands call, in order: `train_texts` (a fresh model's
    tokenizer), `encode`, `build_model`, `objective`, then evaluate `eval_splits` (and "test",
    if encoded: predicted only) and write each split's `predictions_file`."""

    main_metric: str  # selects the best model
    greater_is_better: bool  # of the main metric
    eval_splits: list[str]

    def describe(self) -> str:
        """The task in a few words for the console, e.g. "9 tags"."""
        ...

    def train_texts(self) -> list[str]:
        """The training text a fresh model's tokenizer is trained on."""
        ...

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, Any]:
        """Model-ready splits, datasets or lists of rows (the training split only when
        training)."""
        ...

    def build_model(
        self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase
    ) -> PreTrainedModel: ...

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> Objective:
        """The loss (and, for a task that predicts, predictions and scores); after `encode`."""
        ...

    def predictions_file(self, split: str, predictions: Any) -> tuple[str, str]:
        """(path inside the run directory, text) for a split's predictions from `score`."""
        ...

    def extra(
        self, tokenizer: PreTrainedTokenizerBase, accelerator: Accelerator, run: RunDir
    ) -> Callable[[PreTrainedModel], dict[str, float]] | None:
        """What every evaluation adds beyond the objective's metrics (SFT: generations, written
        to the run directory, and their ROUGE-L); None: nothing."""
        ...


def module(kind: str) -> Any:
    """The module of a kind: llmtrain's own by name, any other by its dotted path."""
    path = f"llmtrain.tasks.{kind}" if kind in KINDS else kind
    try:
        return import_module(path)
    except ModuleNotFoundError as e:
        if e.name is not None and path.startswith(e.name):  # the kind itself, not its imports
            raise ConfigError(
                f"task.kind={kind} is not a kind ({', '.join(KINDS)}) nor a module on the path"
            ) from None
        raise


def schema(kind: str) -> type[TaskConfig]:
    found = getattr(module(kind), "SCHEMA", None)
    if not (isinstance(found, type) and issubclass(found, TaskConfig)):
        raise ConfigError(f"task.kind={kind}: its module has no SCHEMA (a tasks.TaskConfig)")
    return found


def schemas() -> dict[str, type[TaskConfig]]:
    """llmtrain's kinds and their schemas (option tables, resume-free keys)."""
    return {kind: schema(kind) for kind in KINDS}


def complete(node: Any) -> Any:
    """A composed task config (`kind`, and the values its file and the command line give) as its
    kind's schema with those values: an OmegaConf structured config, or None for no task. A key
    the kind does not take is an error naming it."""
    from omegaconf import OmegaConf

    given = OmegaConf.create(node) if isinstance(node, dict) else node
    if given is None or len(given) == 0:
        return None
    kind = given.get("kind") or TaskConfig.kind
    found = schema(kind)
    known = {f.name for f in fields(found)}
    for key in given:
        if key not in known:
            name = given.get("name", "") or kind
            raise ConfigError(
                f"task.{key}: no such option for task={name} (kind {kind}; its options: "
                f"{', '.join(sorted(known))})"
            )
    return OmegaConf.merge(OmegaConf.structured(found), given)


def typed(cfg: Any) -> Any:
    """A composed command config (finetune, evaluate) as its typed schema, its `task` typed by
    the kind's (`complete`, in place, so the config saved with the run holds the kind's
    defaults): the one conversion, for the CLI and for a command that composes another's."""
    from omegaconf import OmegaConf

    if "task" in cfg:
        cfg.task = complete(cfg.task)
    return OmegaConf.to_object(cfg)


def resume_free_keys() -> frozenset[str]:
    """Keys that may change on resumption (llmtrain.config.resume_free_keys), the task kinds'
    included."""
    from llmtrain.config import resume_free_keys as group_keys

    return group_keys(("task", schema) for schema in schemas().values())


def head(cfg: TaskConfig) -> str:
    return module(cfg.kind).HEAD


def check(cfg: TaskConfig, model: ModelConfig) -> None:
    """The kind's own config checks, and that the model can take task.max_length tokens."""
    from llmtrain import models

    module(cfg.kind).check(cfg, model)
    models.check_length(model, cfg.max_length, "task.max_length")


def load(
    cfg: TaskConfig,
    cache_dir: Path,
    training: bool,
    model_labels: list[str] | None = None,
    seed: int = 0,
) -> Task:
    """The task with its files read: for training (train and evaluation splits) or for
    evaluation only; `model_labels` are the label names of the model being evaluated, `seed`
    the run's (a split held out of the training file)."""
    return module(cfg.kind).load(cfg, cache_dir, training, model_labels, seed)


def limit(splits: dict[str, Any], n: int | None) -> dict[str, Any]:
    """The first `n` training examples only (task.max_train_examples), when given."""
    if n is not None and "train" in splits:
        splits["train"] = splits["train"].select(range(min(n, len(splits["train"]))))
    return splits


def task_files(cfg: Any, training: bool) -> dict[str, Path]:
    """The local files a file-based task reads: task.train_file and task.validation_file when
    training, the validation file alone when evaluating."""
    wanted = {"train": cfg.train_file, "validation": cfg.validation_file}
    if not training:
        del wanted["train"]
    missing = [f"task.{split}_file" for split, path in wanted.items() if not path]
    if missing:
        raise ConfigError(f"task={cfg.name} needs {' and '.join(missing)}")
    return {split: Path(path).expanduser() for split, path in wanted.items()}


def lengths(split: Any) -> torch.Tensor:
    """Tokens per row of an encoded split (batches of similar length, trainer.group_by_length)."""
    import datasets
    import torch

    ids = split["input_ids"] if isinstance(split, datasets.Dataset) else None
    if ids is None:
        ids = [row["input_ids"] for row in split]
    return torch.tensor([len(row) for row in ids])


def pad_batch(
    tokenizer: PreTrainedTokenizerBase, examples: list[dict], extra: dict[str, tuple[list, Any]]
) -> dict[str, torch.Tensor]:
    """The model inputs padded per batch, plus per-token `extra` columns {name: (a sequence per
    example, fill value)} padded alike, on the tokenizer's padding side, and the rows' index."""
    import torch

    keys = [k for k in ("input_ids", "token_type_ids") if k in examples[0]]
    batch = dict(tokenizer.pad([{k: ex[k] for k in keys} for ex in examples], return_tensors="pt"))
    length = batch["input_ids"].shape[1]
    left = tokenizer.padding_side == "left"
    for name, (sequences, fill) in extra.items():
        padded = [
            [fill] * (length - len(s)) + list(s) if left else list(s) + [fill] * (length - len(s))
            for s in sequences
        ]
        batch[name] = torch.tensor(padded)
    batch["index"] = torch.tensor([ex["index"] for ex in examples])
    return batch


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What an encoder head takes of a batch."""
    return {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in batch}


def predict_and_record(
    model: PreTrainedModel,
    objective: Objective,
    task: Task,
    encoded: dict[str, datasets.Dataset],
    cfg: TrainerConfig,
    accelerator: Accelerator,
    run: RunDir,
    extra: Callable[[PreTrainedModel], dict[str, float]] | None = None,
) -> Evaluation:
    """Evaluate every evaluation split (and predict the test split), write predictions/, and
    add what the task's evaluations add (`extra`, from `Task.extra`) to the metrics."""
    from llmtrain.train.evaluator import evaluate

    names = [*task.eval_splits, *(["test"] if "test" in encoded else [])]
    evaluation = evaluate(model, objective, {n: encoded[n] for n in names}, cfg, accelerator)
    for split, predictions in evaluation.predictions.items():
        run.write_text(*task.predictions_file(split, predictions))
    if extra is not None:
        evaluation.metrics.update(extra(model))
    return evaluation
