"""`llmtrain evaluate`: a model's metrics and predictions on a task (task=…), or its loss and
perplexity on text (data=…); writes summary.json (and predictions/) into its run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator
from transformers import PreTrainedTokenizerBase

from llmtrain import models, tasks
from llmtrain.config import EvaluateConfig, ObjectiveConfig, ObjectiveName
from llmtrain.console import Console
from llmtrain.data import corpus, sources, stream, stream_sources
from llmtrain.data.packing import PackedDataset, layout, pad_id
from llmtrain.data.tokenizer import load_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.objectives import build_objective
from llmtrain.objectives.inputs import takes_block_diagonal_attention
from llmtrain.rundir import RunDir
from llmtrain.session import header_rows, start
from llmtrain.train import trackers
from llmtrain.train.evaluator import evaluate


def check(cfg: EvaluateConfig) -> str:
    """Every mistake the config alone shows, before any data is read (a model that never
    trained the head to be scored among them); the model's path."""
    path = models.source(cfg.model)
    if not path:
        raise ConfigError(
            "llmtrain evaluate needs a model: model.from_run=RUN_DIR or model.name_or_path=…"
        )
    if cfg.task is not None:
        tasks.check(cfg.task, cfg.model)
        models.require_trained(path, tasks.head(cfg.task), cfg.model.trust_remote_code)
    elif cfg.data is None:
        raise ConfigError("give task=… (metrics) or data=… (perplexity)")
    else:
        name = _objective(cfg, path).name
        models.require_trained(path, "clm" if name is ObjectiveName.clm else "mlm")
        models.check_length(cfg.model, cfg.trainer.block_size, "trainer.block_size")
        sources.check_config(cfg.data)
    return path


def _objective(cfg: EvaluateConfig, path: str) -> ObjectiveConfig:
    """The objective perplexity is measured with: the configured one, else the model's own."""
    model_type = models.pretrained_config(path, cfg.model.trust_remote_code).model_type
    name = ObjectiveName.mlm if model_type in models.MASKED_TYPES else ObjectiveName.clm
    return cfg.objective or ObjectiveConfig(name=name)


def run(
    cfg: EvaluateConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    path = check(cfg)
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
        summary = _task(cfg, path, tokenizer, accelerator, run, console)
    else:
        summary = _language_model(cfg, path, tokenizer, accelerator)
    summary["model"] = path
    summary["wall_seconds"] = round(console.elapsed(), 3)
    run.write_summary(summary)
    trackers.log(accelerator, 0, "eval", summary)
    console.summary("llmtrain evaluate", summary, f"run directory: {run.path}")
    accelerator.end_training()
    return summary


def _task(
    cfg: EvaluateConfig,
    path: str,
    tokenizer: PreTrainedTokenizerBase,
    accelerator: Accelerator,
    run: RunDir,
    console: Console,
) -> dict[str, Any]:
    """The task's metrics (and what its evaluations add), its predictions in predictions/."""
    id2label = models.pretrained_config(path, cfg.model.trust_remote_code).id2label or {}
    task = tasks.load(
        cfg.task,
        Path(cfg.task.cache_dir).expanduser(),
        training=False,
        model_labels=[id2label[i] for i in sorted(id2label)],
        seed=cfg.trainer.seed,
    )
    encoded = task.encode(tokenizer, console.warn)
    model = task.build_model(cfg.model, tokenizer)
    objective, extra = task.objective(tokenizer), task.extra(tokenizer, accelerator, run)
    evaluation = tasks.predict_and_record(
        model, objective, task, encoded, cfg.trainer, accelerator, run, extra
    )
    return {"task": cfg.task.name, "main_metric": task.main_metric, **evaluation.metrics}


def _language_model(
    cfg: EvaluateConfig, path: str, tokenizer, accelerator: Accelerator
) -> dict[str, Any]:
    objective_cfg = _objective(cfg, path)
    model = models.build_model(cfg.model, objective_cfg.name, tokenizer)
    kind = layout(cfg.data.packing, takes_block_diagonal_attention(model))
    block, pad, seed = cfg.trainer.block_size, pad_id(tokenizer), cfg.trainer.seed
    if cfg.data.streaming:  # the blocks the run evaluated on, read from the stream again
        settings = corpus.settings(cfg.data, tokenizer, seed)
        source = stream_sources.open_stream(cfg.data, seed)
        blocks, _ = stream.validation_blocks(
            source, settings, block, kind, pad, cfg.data.stream_validation_blocks
        )
    else:
        plan = corpus.plan_for(cfg.data, tokenizer, seed, need_train=False)
        share = (accelerator.process_index, accelerator.num_processes)
        corpus.run(plan, cfg.data.num_proc, share)
        accelerator.wait_for_everyone()
        validation = corpus.splits(plan, need_train=False)["validation"]
        blocks = PackedDataset(validation, block, kind, pad, "validation")
    objective = build_objective(objective_cfg, tokenizer)
    metrics = evaluate(model, objective, {"validation": blocks}, cfg.trainer, accelerator).metrics
    return {"objective": objective_cfg.name.value, **metrics, "tokens": blocks.num_tokens}
