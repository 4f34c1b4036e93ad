"""`llmtrain prepare`: the token shards `llmtrain pretrain` would prepare with the same settings,
on their own, so pretrain starts training at once. Under torchrun every process prepares its
share; `data.prepare_shard=I/N` prepares share I of N alone (one job of a SLURM array), and the
first run that finds every share done reads them as one corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmtrain import models
from llmtrain.config import PretrainConfig
from llmtrain.data import corpus, sources
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.prepare import is_complete
from llmtrain.errors import ConfigError
from llmtrain.models import check_objective
from llmtrain.objectives import PAIRED
from llmtrain.session import header_rows, start


def run(
    cfg: PretrainConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    sources.check_config(cfg.data)
    models.check_config(cfg.model)
    check_objective(cfg.model, cfg.objective.name)  # the family decides a new tokenizer's kind
    if cfg.data.streaming:
        raise ConfigError(
            "data.streaming=true reads the dataset while training: there is nothing to prepare"
        )
    if cfg.objective.name in PAIRED:
        raise ConfigError(
            f"objective={cfg.objective.name.value} reads sentence pairs, not prepared shards: "
            "llmtrain prepare applies to objective=mlm and objective=clm"
        )
    if not models.source(cfg.model):
        tokenizers.check_config(cfg.tokenizer)
    index, count = corpus.parse_share(cfg.data.prepare_shard)
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed, cfg.logger, resolved)
    with accelerator.main_process_first():  # rank 0 trains a new tokenizer, the others load it
        plan, tokenizer = corpus.plan(
            cfg.data, cfg.tokenizer, cfg.model, cfg.trainer.seed, models.source(cfg.model)
        )
    world = accelerator.num_processes
    share = (index * world + accelerator.process_index, count * world)
    rows = header_rows("prepare", overrides, run, accelerator, cfg.trainer)
    rows["data"] = (
        f"{corpus.describe(plan)}: {len(plan.items):,} shards, {plan.input_bytes / 1e6:,.1f} MB"
    )
    rows["share"] = f"{cfg.data.prepare_shard or 'all'} over {world} process(es)"
    console.header("llmtrain prepare", rows)
    outcome = corpus.run(plan, cfg.data.num_proc, share, progress=console.preparing())
    console.stop()
    accelerator.wait_for_everyone()
    complete = sum(is_complete(s) for s in outcome.shards)
    summary: dict[str, Any] = {
        "directory": str(plan.directory),
        "shards": len(outcome.shards),
        "shards_complete": complete,
        "shards_prepared": outcome.prepared,  # by this process
        "shards_reused": outcome.reused,
        "wall_seconds": round(console.elapsed(), 3),
    }
    if complete == len(outcome.shards):
        for name, tokens in corpus.splits(plan).items():
            summary[f"{name}_documents"] = tokens.n_documents
            summary[f"{name}_tokens"] = tokens.n_tokens
        summary["vocab_size"] = len(tokenizer)
    run.write_summary(summary)
    console.summary("summary", summary, f"prepared: {plan.directory}")
    accelerator.end_training()
    return summary
