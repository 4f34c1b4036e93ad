"""`llmtrain pretrain`: a language model from raw text (MLM for BERT, CLM for GPT-2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmtrain import models, recipes
from llmtrain.commands import start
from llmtrain.config import PretrainConfig
from llmtrain.data.packing import BlockDataset, pack_blocks
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer, save_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.models import build_model, check_objective, count_parameters, max_positions
from llmtrain.objectives import build_objective
from llmtrain.train.loop import check_trainer, fit


def run(cfg: PretrainConfig, run_dir: Path, resolved: dict[str, Any]) -> dict[str, Any]:
    check_trainer(cfg.trainer)
    recipes.require(cfg.recipe, "pretrain")
    check_objective(cfg.model, cfg.objective.name)
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed)
    cache = Path(cfg.data.cache_dir).expanduser()
    block = cfg.trainer.block_size

    with accelerator.main_process_first():  # rank 0 builds the caches, the others read them
        corpus = load_corpus(cfg.data, cfg.trainer.seed)
        tokenizer = build_tokenizer(
            cfg.tokenizer,
            cfg.model.family,
            corpus["train"],
            cache,
            max_length=cfg.model.max_position_embeddings,
            fallback_path=models.source(cfg.model),
            trust_remote_code=cfg.model.trust_remote_code,
        )
        train_set = BlockDataset(pack_blocks(corpus["train"], tokenizer, block, cache, "training"))
        eval_set = BlockDataset(
            pack_blocks(corpus["validation"], tokenizer, block, cache, "validation")
        )
    objective = build_objective(cfg.objective, tokenizer)
    model = build_model(cfg.model, cfg.objective.name, tokenizer)
    if block > max_positions(model):
        raise ConfigError(
            f"trainer.block_size={block} exceeds the model's {max_positions(model)} positions"
        )
    params = count_parameters(model)
    processes, t = accelerator.num_processes, cfg.trainer
    docs, val_docs = len(corpus["train"]), len(corpus["validation"])
    console.table(
        "llmtrain pretrain",
        {
            "run directory": str(run.path),
            "device": f"{accelerator.device} x {processes}, precision {t.precision.value}",
            "model": f"{type(model).__name__}, {params:,} parameters",
            "objective": cfg.objective.name.value,
            "data": f"{docs:,} documents, {train_set.num_tokens:,} tokens, "
            f"{len(train_set):,} blocks of {block}",
            "validation": f"{val_docs:,} documents, {len(eval_set):,} blocks",
            "global batch": f"{t.batch_size * t.grad_accum * processes} sequences",
        },
    )

    result = fit(
        model=model,
        objective=objective,
        train_set=train_set,
        eval_sets={"validation": eval_set},
        cfg=cfg.trainer,
        accelerator=accelerator,
        run=run,
        console=console,
        run_config=resolved,
    )
    with run.write_dir("final") as tmp:
        if tmp is not None:
            model.save_pretrained(str(tmp))
            save_tokenizer(tokenizer, tmp)
    summary = {
        "loss": result["eval"].metrics["loss"],
        "perplexity": result["eval"].metrics["perplexity"],
        "steps": result["steps"],
        "tokens": result["tokens"],
        "train_seconds": round(result["train_seconds"], 3),
        "tokens_per_s": round(result["tokens_per_s"], 1),
        "parameters": params,
    }
    console.table("summary", summary)
    recipes.report(cfg.recipe, summary, console)
    run.write_summary(summary)
    console.line(f"run directory: {run.path}  (final model: {run.final})")
    accelerator.end_training()
    return summary
