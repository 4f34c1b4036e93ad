"""`llmtrain evaluate`: a model's metrics and predictions on a task (task=…), or its loss and
perplexity on text (data=…); writes summary.json (and predictions/) into its run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from accelerate import Accelerator
from transformers import PreTrainedModel

from llmtrain import models
from llmtrain.commands import header_rows, start
from llmtrain.config import EvaluateConfig, ObjectiveConfig, ObjectiveName, TrainerConfig
from llmtrain.data.packing import BlockDataset, pack_blocks
from llmtrain.data.sources import load_corpus
from llmtrain.data.tasks import TaskData, encode, load_task
from llmtrain.data.tokenizer import load_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.objectives import Objective, SequenceClassification, build_objective
from llmtrain.rundir import RunDir
from llmtrain.train import trackers
from llmtrain.train.evaluate import Evaluation, evaluate


def predict_and_record(
    model: PreTrainedModel,
    objective: Objective,
    task: TaskData,
    encoded: dict[str, datasets.Dataset],
    cfg: TrainerConfig,
    accelerator: Accelerator,
    run: RunDir,
) -> Evaluation:
    """Evaluate every evaluation split (and predict the test split) and write predictions/."""
    names = [*task.eval_splits, *(["test"] if "test" in encoded else [])]
    evaluation = evaluate(model, objective, {n: encoded[n] for n in names}, cfg, accelerator)
    for split, rows in evaluation.predictions.items():
        run.write_text(f"predictions/{split}.tsv", task.predictions_tsv(split, rows))
    return evaluation


def run(
    cfg: EvaluateConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    path = models.source(cfg.model)
    if not path:
        raise ConfigError(
            "llmtrain evaluate needs a model: model.from_run=RUN_DIR or model.name_or_path=…"
        )
    accelerator, run, console = start(cfg.trainer, run_dir, None, cfg.logger, resolved)
    console.header(
        "llmtrain evaluate",
        {
            **header_rows("evaluate", overrides, run, accelerator, cfg.trainer),
            "model": path,
            "on": f"task {cfg.task.name}" if cfg.task is not None else "text (perplexity)",
        },
    )
    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
    if cfg.task is not None:
        task = load_task(cfg.task, Path(cfg.task.cache_dir).expanduser())
        encoded = {
            n: encode(s, tokenizer, cfg.task.max_length)
            for n, s in task.splits.items()
            if n != "train"
        }
        model = models.build_classifier(cfg.model, tokenizer, task.labels)
        objective = SequenceClassification(tokenizer, task.metrics, task.regression)
        evaluation = predict_and_record(
            model, objective, task, encoded, cfg.trainer, accelerator, run
        )
        summary = {"task": cfg.task.name, "main_metric": task.metrics[0], **evaluation.metrics}
    else:
        summary = _language_model(cfg, path, tokenizer, accelerator)
    summary["model"] = path
    summary["wall_seconds"] = round(console.elapsed(), 3)
    run.write_summary(summary)
    trackers.log(accelerator, 0, "eval", summary)
    console.summary("llmtrain evaluate", summary, f"run directory: {run.path}")
    accelerator.end_training()
    return summary


def _language_model(
    cfg: EvaluateConfig, path: str, tokenizer, accelerator: Accelerator
) -> dict[str, Any]:
    if cfg.data is None:
        raise ConfigError("give task=… (metrics) or data=… (perplexity)")
    model_type = models.pretrained_config(path, cfg.model.trust_remote_code).model_type
    name = ObjectiveName.mlm if model_type in models.MASKED_TYPES else ObjectiveName.clm
    objective_cfg = cfg.objective or ObjectiveConfig(name=name)
    model = models.build_model(cfg.model, objective_cfg.name, tokenizer)
    cache = Path(cfg.data.cache_dir).expanduser()
    split = load_corpus(cfg.data, cfg.trainer.seed, need_train=False)["validation"]
    blocks = BlockDataset(
        pack_blocks(split, tokenizer, cfg.trainer.block_size, cache, "validation")
    )
    objective = build_objective(objective_cfg, tokenizer)
    metrics = evaluate(model, objective, {"validation": blocks}, cfg.trainer, accelerator).metrics
    return {"objective": objective_cfg.name.value, **metrics, "tokens": blocks.num_tokens}
