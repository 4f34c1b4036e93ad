"""`llmtrain finetune`: a model on a labelled task (any kind: llmtrain.kinds); final/ is the best
model by the task's main metric."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import datasets
import torch

from llmtrain import kinds, models, recipes
from llmtrain.commands import finetune_summary, finish, global_batch, header_rows, sft, start
from llmtrain.commands.evaluate import predict_and_record
from llmtrain.config import FinetuneConfig
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from llmtrain.kinds import load_kind
from llmtrain.models import count_parameters
from llmtrain.train.evaluator import Evaluator, Select
from llmtrain.train.job import Job, check_trainer, total_steps
from llmtrain.train.loop import fit


def check(cfg: FinetuneConfig) -> None:
    """Every mistake the config alone shows, before any data is read."""
    check_trainer(cfg.trainer)
    recipes.require(cfg, "finetune")
    models.check_config(cfg.model)
    models.check_head(cfg.model, kinds.head(cfg.task.name))
    models.check_length(cfg.model, cfg.task.max_length, "task.max_length")
    if not models.source(cfg.model):  # a loaded model brings its tokenizer
        tokenizers.check_config(cfg.tokenizer)


def run(
    cfg: FinetuneConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    if cfg.task.name == "sft":  # a causal LM on prompts and responses: its own recipe
        return sft.finetune(cfg, run_dir, resolved, overrides)
    check(cfg)
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed, cfg.logger, resolved)
    cache = Path(cfg.task.cache_dir).expanduser()
    path = models.source(cfg.model)

    with accelerator.main_process_first():  # rank 0 builds the caches, the others read them
        task = load_kind(cfg.task, cache, training=True)
        if path:
            tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
        else:  # a fresh model gets a tokenizer trained on the task's own training text
            texts = task.train_texts()
            tokenizer = build_tokenizer(
                cfg.tokenizer,
                cfg.model.family,
                datasets.Dataset.from_dict({"text": texts}),
                cache,
                max_length=cfg.model.max_position_embeddings,
                fingerprint=hashlib.sha256("\n".join(texts).encode()).hexdigest(),
            )
        encoded = task.encode(tokenizer, console.warn)
    model = task.build_model(cfg.model, tokenizer)
    objective = task.objective(tokenizer)
    main = task.main_metric
    steps = total_steps(cfg.trainer, len(encoded["train"]), accelerator.num_processes)
    console.header(
        "llmtrain finetune",
        {
            **header_rows("finetune", overrides, run, accelerator, cfg.trainer),
            "task": f"{cfg.task.name}: {task.describe()}, main metric {main}",
            "model": f"{path or 'fresh ' + cfg.model.family.value}: {type(model).__name__}, "
            f"{count_parameters(model):,} parameters",
            "data": ", ".join(f"{name} {len(split):,} examples" for name, split in encoded.items()),
            "global batch": global_batch(cfg.trainer, accelerator, "examples"),
            "steps": f"{steps:,}"
            + (f" ({cfg.trainer.epochs:g} epochs)" if cfg.trainer.epochs is not None else ""),
        },
    )

    def export(directory: Path, weights: dict[str, torch.Tensor]) -> None:
        model.save_pretrained(str(directory), state_dict=weights)
        save_tokenizer(tokenizer, directory)

    job = Job(cfg.trainer, accelerator, run, console, resolved, steps)
    evaluator = Evaluator(
        {name: encoded[name] for name in task.eval_splits},
        objective,
        cfg.trainer,
        accelerator,
        select=Select(main, export),
        closing_evals=2,  # the last evaluation, then final/'s predictions
    )
    lengths = torch.tensor([len(ids) for ids in encoded["train"]["input_ids"]])
    result = fit(job, model, objective, encoded["train"], evaluator, lengths)
    run.promote("best", "final")
    accelerator.wait_for_everyone()
    # Predictions and best metrics come from final/ as saved, so they are what a user reloads.
    best_model = task.build_model(
        models.ModelConfig(name_or_path=str(run.final), attention=cfg.model.attention), tokenizer
    )
    evaluation = predict_and_record(
        best_model, objective, task, encoded, cfg.trainer, accelerator, run
    )
    summary = finetune_summary(
        cfg.task.name, main, result, evaluation.metrics, model, console.elapsed()
    )
    return finish(
        cfg, summary, run, console, accelerator, "final model, the best", result.last_eval.metrics
    )
