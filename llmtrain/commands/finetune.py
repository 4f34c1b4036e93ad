"""`llmtrain finetune`: a model on a task of any kind (llmtrain.tasks); final/ is the best model
by the task's main metric."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain import models, recipes, tasks
from llmtrain.config import FinetuneConfig
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.models import count_parameters
from llmtrain.session import finetune_summary, finish, global_batch, header_rows, start
from llmtrain.train.evaluator import Evaluator, Select
from llmtrain.train.job import Job, check_trainer, total_steps
from llmtrain.train.loop import fit


def check(cfg: FinetuneConfig) -> None:
    """Every mistake the config alone shows, before any data is read."""
    if cfg.task is None:
        raise ConfigError("llmtrain finetune needs a task: task=NAME")
    check_trainer(cfg.trainer)
    recipes.require(cfg, "finetune")
    models.check_config(cfg.model)
    tasks.check(cfg.task, cfg.model)
    if not models.source(cfg.model):  # a loaded model brings its tokenizer
        tokenizers.check_config(cfg.tokenizer)


def run(
    cfg: FinetuneConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    check(cfg)
    free = tasks.resume_free_keys()  # a task's keys among them
    accelerator, run, console = start(
        cfg.trainer, run_dir, cfg.distributed, cfg.logger, resolved, free
    )
    cache = Path(cfg.task.cache_dir).expanduser()
    with accelerator.main_process_first():  # rank 0 builds the caches, the others read them
        task = tasks.load(cfg.task, cache, training=True, seed=cfg.trainer.seed)
        tokenizer = _tokenizer(cfg, task, cache)
        encoded = task.encode(tokenizer, console.warn)
    model = task.build_model(cfg.model, tokenizer)
    objective = task.objective(tokenizer)
    extra = task.extra(tokenizer, accelerator, run)
    main = task.main_metric
    steps = total_steps(cfg.trainer, len(encoded["train"]), accelerator.num_processes)
    rows = header_rows("finetune", overrides, run, accelerator, cfg.trainer)
    console.header(
        "llmtrain finetune", {**rows, **_header(cfg, task, model, encoded, accelerator, steps)}
    )

    def export(directory: Path, weights: dict[str, torch.Tensor]) -> None:
        model.save_pretrained(str(directory), state_dict=weights)
        save_tokenizer(tokenizer, directory)

    job = Job(cfg.trainer, accelerator, run, console, resolved, steps, free)
    evaluator = Evaluator(
        {name: encoded[name] for name in task.eval_splits},
        objective,
        cfg.trainer,
        accelerator,
        select=Select(main, export, greater_is_better=task.greater_is_better),
        extra=extra,
        closing_evals=2,  # the last evaluation, then final/'s
    )
    result = fit(
        job, model, objective, encoded["train"], evaluator, tasks.lengths(encoded["train"])
    )
    run.promote("best", "final")
    accelerator.wait_for_everyone()
    # Predictions and best metrics come from final/ as saved, so they are what a user reloads.
    best_model = task.build_model(
        models.ModelConfig(name_or_path=str(run.final), attention=cfg.model.attention), tokenizer
    )
    evaluation = tasks.predict_and_record(
        best_model, objective, task, encoded, cfg.trainer, accelerator, run, extra
    )
    summary = finetune_summary(
        cfg.task.name, main, result, evaluation.metrics, model, console.elapsed()
    )
    return finish(
        cfg, summary, run, console, accelerator, "final model, the best", result.last_eval.metrics
    )


def _tokenizer(cfg: FinetuneConfig, task: tasks.Task, cache: Path) -> PreTrainedTokenizerBase:
    """The loaded model's tokenizer, or for a fresh model one trained on the task's own
    training text."""
    path = models.source(cfg.model)
    if path:
        return load_tokenizer(path, cfg.model.trust_remote_code)
    texts = task.train_texts()
    return build_tokenizer(
        cfg.tokenizer,
        cfg.model.family,
        datasets.Dataset.from_dict({"text": texts}),
        cache,
        max_length=cfg.model.max_position_embeddings,
        fingerprint=hashlib.sha256("\n".join(texts).encode()).hexdigest(),
    )


def _header(
    cfg: FinetuneConfig,
    task: tasks.Task,
    model: PreTrainedModel,
    encoded: dict[str, Any],
    accelerator: Accelerator,
    steps: int,
) -> dict[str, str]:
    """The header's rows of what is trained: task, model, data, batch and steps."""
    lower = "" if task.greater_is_better else " (lower is better)"
    path = models.source(cfg.model)
    return {
        "task": f"{cfg.task.name}: {task.describe()}, main metric {task.main_metric}{lower}",
        "model": f"{path or 'fresh ' + cfg.model.family.value}: {type(model).__name__}, "
        f"{count_parameters(model):,} parameters",
        "data": ", ".join(f"{name} {len(split):,} rows" for name, split in encoded.items()),
        "global batch": global_batch(cfg.trainer, accelerator, "rows"),
        "steps": f"{steps:,}"
        + (f" ({cfg.trainer.epochs:g} epochs)" if cfg.trainer.epochs is not None else ""),
    }
