"""`llmtrain finetune`: a model on a labelled task; final/ is the best model by the main metric."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import datasets
import torch

from llmtrain import models, recipes
from llmtrain.commands import start
from llmtrain.commands.evaluate import predict_and_record
from llmtrain.config import FinetuneConfig
from llmtrain.data.tasks import encode, load_task
from llmtrain.data.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from llmtrain.models import build_classifier, count_parameters
from llmtrain.objectives import SequenceClassification
from llmtrain.train.loop import Selection, check_trainer, fit


def run(cfg: FinetuneConfig, run_dir: Path, resolved: dict[str, Any]) -> dict[str, Any]:
    check_trainer(cfg.trainer)
    recipes.require(cfg.recipe, "finetune")
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed)
    cache = Path(cfg.task.cache_dir).expanduser()
    path = models.source(cfg.model)

    with accelerator.main_process_first():  # rank 0 builds the caches, the others read them
        task = load_task(cfg.task, cache)
        if path:
            tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
        else:  # a fresh model gets a tokenizer trained on the task's own training text
            train = task.splits["train"]
            texts = list(train["text_a"]) + (list(train["text_b"]) if task.pair else [])
            tokenizer = build_tokenizer(
                cfg.tokenizer,
                cfg.model.family,
                datasets.Dataset.from_dict({"text": texts}),
                cache,
                max_length=cfg.model.max_position_embeddings,
                fingerprint=hashlib.sha256("\n".join(texts).encode()).hexdigest(),
            )
        encoded = {
            name: encode(split, tokenizer, cfg.task.max_length)
            for name, split in task.splits.items()
        }
    model = build_classifier(cfg.model, tokenizer, task.labels)
    objective = SequenceClassification(tokenizer, task.metrics, task.regression)
    main = task.metrics[0]
    kind = "regression" if task.regression else f"{len(task.labels)} labels"
    t = cfg.trainer
    console.table(
        "llmtrain finetune",
        {
            "run directory": str(run.path),
            "task": f"{cfg.task.name}: {kind}, main metric {main}",
            "model": f"{path or 'fresh ' + cfg.model.family.value}: {type(model).__name__}, "
            f"{count_parameters(model):,} parameters",
            "data": ", ".join(f"{name} {len(split):,}" for name, split in encoded.items()),
            "global batch": f"{t.batch_size * t.grad_accum * accelerator.num_processes}",
        },
    )

    def export(directory: Path) -> None:
        model.save_pretrained(str(directory))
        save_tokenizer(tokenizer, directory)

    result = fit(
        model=model,
        objective=objective,
        train_set=encoded["train"],
        eval_sets={name: encoded[name] for name in task.eval_splits},
        cfg=cfg.trainer,
        accelerator=accelerator,
        run=run,
        console=console,
        run_config=resolved,
        select=Selection(main, export),
        train_lengths=torch.tensor([len(ids) for ids in encoded["train"]["input_ids"]]),
    )
    run.promote("best", "final")
    accelerator.wait_for_everyone()
    # Predictions and best metrics come from final/ as saved, so they are what a user reloads.
    best_model = build_classifier(
        models.ModelConfig(name_or_path=str(run.final), attention=cfg.model.attention),
        tokenizer,
        task.labels,
    )
    evaluation = predict_and_record(
        best_model, objective, task, encoded, cfg.trainer, accelerator, run
    )
    summary = {
        "task": cfg.task.name,
        "main_metric": main,
        "best_step": result["best_step"],
        **{f"best_{k}": v for k, v in evaluation.metrics.items()},
        **{f"final_{k}": v for k, v in result["eval"].metrics.items()},
        "steps": result["steps"],
        "tokens": result["tokens"],
        "train_seconds": round(result["train_seconds"], 3),
        "tokens_per_s": round(result["tokens_per_s"], 1),
        "parameters": count_parameters(model),
    }
    console.table("summary", summary)
    recipes.report(cfg.recipe, summary, console)
    run.write_summary(summary)
    console.line(f"run directory: {run.path}  (best model: {run.final})")
    accelerator.end_training()
    return summary
