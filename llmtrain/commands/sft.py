"""`llmtrain finetune task=sft` and `llmtrain evaluate task=sft`: a causal LM trained on
prompt → response examples (loss on the responses only); evaluations report the validation
responses' loss and perplexity, write generations from validation prompts to
predictions/samples.jsonl and, with task.rouge=true, their ROUGE-L against the references."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain import models, recipes
from llmtrain.commands import finetune_summary, finish, global_batch, header_rows, start
from llmtrain.config import (
    EvaluateConfig,
    Family,
    FinetuneConfig,
    ModelConfig,
    ObjectiveName,
    TaskConfig,
)
from llmtrain.console import Console
from llmtrain.data import sft
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from llmtrain.errors import ConfigError, DataError
from llmtrain.generation import generate
from llmtrain.metrics import rouge_l
from llmtrain.objectives.causal import SupervisedLM
from llmtrain.rundir import RunDir
from llmtrain.train.evaluator import Evaluator, Select
from llmtrain.train.evaluator import evaluate as evaluate_splits
from llmtrain.train.job import Job, check_trainer, total_steps
from llmtrain.train.loop import fit

MAIN = "loss"  # the best model has the lowest validation loss on the responses


def finetune(
    cfg: FinetuneConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    check_trainer(cfg.trainer)
    recipes.require(cfg, "finetune")
    _check_task(cfg.task)
    models.check_config(cfg.model)
    path = models.source(cfg.model)
    if path:
        models.check_objective(cfg.model, ObjectiveName.clm)  # a decoder: before any data work
    elif cfg.model.family is not Family.gpt2:
        raise ConfigError(
            "task=sft trains a causal LM: model=gpt2-tiny for a fresh one, or "
            "model.from_run=… / model.name_or_path=… of a decoder"
        )
    else:
        tokenizers.check_config(cfg.tokenizer)
    models.check_length(cfg.model, cfg.task.max_length, "task.max_length")
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed, cfg.logger, resolved)
    with accelerator.main_process_first():  # rank 0 builds the tokenizer cache, the others read
        splits = sft.load_splits(cfg.task, cfg.trainer.seed)
        if path:
            tokenizer = load_tokenizer(path, cfg.model.trust_remote_code)
        else:  # a fresh model gets a tokenizer trained on the examples' own text
            texts = [t for ex in splits["train"] for t in ex.texts()]
            tokenizer = build_tokenizer(
                cfg.tokenizer,
                Family.gpt2,
                datasets.Dataset.from_dict({"text": texts}),
                Path(cfg.task.cache_dir).expanduser(),
                max_length=cfg.model.max_position_embeddings,
                fingerprint=hashlib.sha256("\n".join(texts).encode()).hexdigest(),
            )
    sft.prepare_tokenizer(tokenizer, [*splits["train"], *splits["validation"]])
    model = models.build_model(cfg.model, ObjectiveName.clm, tokenizer)
    train = _encode(splits["train"], tokenizer, cfg.task, cfg.task.packing, "train", console)
    validation = _encode(splits["validation"], tokenizer, cfg.task, False, "validation", console)
    objective = SupervisedLM(_pad_id(tokenizer))
    samples = _sampler(
        splits["validation"], tokenizer, cfg.task, cfg.trainer.seed, accelerator, run
    )
    console.header(
        "llmtrain finetune",
        {
            **header_rows("finetune", overrides, run, accelerator, cfg.trainer),
            "task": f"sft: loss on responses, main metric {MAIN} (lower is better)",
            "model": f"{path or 'fresh gpt2'}: {type(model).__name__}, "
            f"{models.count_parameters(model):,} parameters",
            "data": f"train {len(splits['train']):,} examples in {len(train):,} rows"
            f"{' (packed)' if cfg.task.packing else ''}, validation {len(validation):,}",
            "global batch": global_batch(cfg.trainer, accelerator, "rows"),
        },
    )

    def export(directory: Path, weights: dict[str, torch.Tensor]) -> None:
        model.save_pretrained(str(directory), state_dict=weights)
        save_tokenizer(tokenizer, directory)

    steps = total_steps(cfg.trainer, len(train), accelerator.num_processes)
    job = Job(cfg.trainer, accelerator, run, console, resolved, steps)
    evaluator = Evaluator(
        {"validation": validation},
        objective,
        cfg.trainer,
        accelerator,
        select=Select(MAIN, export, greater_is_better=False),
        extra=samples,
    )
    lengths = torch.tensor([len(row["input_ids"]) for row in train])
    result = fit(job, model, objective, train, evaluator, lengths)
    run.promote("best", "final")
    accelerator.wait_for_everyone()
    # The best metrics and the samples left in predictions/ come from final/ as saved.
    best = models.build_model(
        ModelConfig(name_or_path=str(run.final), attention=cfg.model.attention),
        ObjectiveName.clm,
        tokenizer,
    ).to(accelerator.device)
    metrics = _evaluate(best, objective, validation, samples, cfg.trainer, accelerator)
    summary = finetune_summary("sft", MAIN, result, metrics, model, console.elapsed())
    return finish(
        cfg, summary, run, console, accelerator, "final model, the best", result.last_eval.metrics
    )


def evaluate(
    cfg: EvaluateConfig,
    path: str,
    tokenizer: PreTrainedTokenizerBase,
    accelerator: Accelerator,
    run: RunDir,
    console: Console,
) -> dict[str, Any]:
    """Loss and perplexity on the validation responses (task.validation_file, else the share of
    task.train_file that fine-tuning held out), and samples from their prompts."""
    validation = sft.load_validation(cfg.task, cfg.trainer.seed)
    sft.prepare_tokenizer(tokenizer, validation)
    model = models.build_model(cfg.model, ObjectiveName.clm, tokenizer).to(accelerator.device)
    rows = _encode(validation, tokenizer, cfg.task, False, "validation", console)
    samples = _sampler(validation, tokenizer, cfg.task, cfg.trainer.seed, accelerator, run)
    objective = SupervisedLM(_pad_id(tokenizer))
    metrics = _evaluate(model, objective, rows, samples, cfg.trainer, accelerator)
    return {"task": "sft", "main_metric": MAIN, **metrics, "examples": len(validation)}


def _evaluate(model, objective, rows, samples, trainer_cfg, accelerator) -> dict[str, float]:
    metrics = evaluate_splits(model, objective, {"validation": rows}, trainer_cfg, accelerator)
    return {**metrics.metrics, **samples(model)}


def check_evaluate(cfg: EvaluateConfig) -> None:
    """What `llmtrain evaluate task=sft` can check before reading any data."""
    _check_task(cfg.task)
    models.check_objective(cfg.model, ObjectiveName.clm)
    models.check_length(cfg.model, cfg.task.max_length, "task.max_length")


def _check_task(cfg: TaskConfig) -> None:
    if cfg.max_length < 2:
        raise ConfigError(f"task.max_length={cfg.max_length} must be at least 2")
    if cfg.samples is not None and cfg.samples < 0:
        raise ConfigError(f"task.samples={cfg.samples} must not be negative (null: all)")
    if cfg.max_new_tokens <= 0:
        raise ConfigError(f"task.max_new_tokens={cfg.max_new_tokens} must be positive")
    if cfg.do_sample and (cfg.temperature <= 0 or not 0 < cfg.top_p <= 1):
        raise ConfigError("task.temperature must be positive and task.top_p in (0, 1]")
    if cfg.rouge and cfg.samples == 0:
        raise ConfigError("task.rouge=true needs generations: task.samples=0 makes none")
    if cfg.rouge:
        rouge_l([], [])  # fails now, not after training, when rouge-score is missing


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    # Padding is never attended to by a real token nor scored: any id will do.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _encode(
    examples: list[sft.Example],
    tokenizer: PreTrainedTokenizerBase,
    cfg: TaskConfig,
    packing: bool,
    split: str,
    console: Console,
) -> list[dict]:
    encoded = sft.encode(examples, tokenizer, cfg.max_length, packing)
    if encoded.truncated:
        console.warn(
            f"{split}: {encoded.truncated} of {len(examples)} examples are longer than "
            f"task.max_length={cfg.max_length} tokens and were cut"
            + (
                f"; {encoded.dropped} lost every response token and were left out"
                if encoded.dropped
                else ""
            )
        )
    if not encoded.rows:
        raise DataError(
            f"{split}: no example keeps a response token within task.max_length={cfg.max_length}"
        )
    return encoded.rows


def _sampler(
    examples: list[sft.Example],
    tokenizer: PreTrainedTokenizerBase,
    cfg: TaskConfig,
    seed: int,
    accelerator: Accelerator,
    run: RunDir,
) -> Callable[[PreTrainedModel], dict[str, float]]:
    """What each evaluation adds: generations from the first task.samples validation prompts,
    written to predictions/samples.jsonl (replacing the previous evaluation's), and their
    ROUGE-L when task.rouge=true."""
    chosen = examples if cfg.samples is None else examples[: cfg.samples]
    prompts = [sft.prompt(ex, tokenizer, cfg.max_length) for ex in chosen]

    def sample(model: PreTrainedModel) -> dict[str, float]:
        texts = generate(model, tokenizer, [p.ids for p in prompts], cfg, accelerator, seed)
        rows = [
            {"prompt": p.text, "reference": p.reference, "generation": text}
            for p, text in zip(prompts, texts, strict=True)
        ]
        run.write_text("predictions/samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        if not cfg.rouge:
            return {}
        return {"rouge_l": rouge_l(texts, [p.reference for p in prompts])}

    return sample
