"""`llmtrain pretrain`: a language model from raw text (MLM, MLM + NSP/SOP for BERT, CLM for
GPT-2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llmtrain import models
from llmtrain.commands import start
from llmtrain.config import ObjectiveName, PretrainConfig
from llmtrain.data.packing import BlockDataset, pack_blocks
from llmtrain.data.pairs import PairDataset, pair_blocks
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer, save_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.models import build_model, check_objective, count_parameters, max_positions
from llmtrain.objectives import PAIRED, build_objective
from llmtrain.train.loop import check_trainer, fit


def run(cfg: PretrainConfig, run_dir: Path, resolved: dict[str, Any]) -> dict[str, Any]:
    check_trainer(cfg.trainer)
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
        train_set, eval_set = (
            _examples(cfg, corpus[split], tokenizer, cache, what)
            for split, what in (("train", "training"), ("validation", "validation"))
        )
    paired = cfg.objective.name in PAIRED
    # Special tokens per pair: [CLS] and two [SEP].
    tokens_per_pair = float(train_set.lengths.mean()) - 3 if paired else None
    objective = build_objective(cfg.objective, tokenizer, tokens_per_pair)
    model = build_model(cfg.model, cfg.objective.name, tokenizer)
    if block > max_positions(model):
        raise ConfigError(
            f"trainer.block_size={block} exceeds the model's {max_positions(model)} positions"
        )
    params = count_parameters(model)
    processes, t = accelerator.num_processes, cfg.trainer
    docs, val_docs = len(corpus["train"]), len(corpus["validation"])
    unit = "pairs" if paired else "blocks"
    shown = cfg.objective.name.value
    if paired:
        shown += f", pair loss weight {objective.pair_weight:.3g}"
    if cfg.objective.whole_word_mask:
        shown += ", whole-word masking"
    console.table(
        "llmtrain pretrain",
        {
            "run directory": str(run.path),
            "device": f"{accelerator.device} x {processes}, precision {t.precision.value}",
            "model": f"{type(model).__name__}, {params:,} parameters",
            "objective": shown,
            "data": f"{docs:,} documents, {train_set.num_tokens:,} tokens, "
            f"{len(train_set):,} {unit} of {'at most ' * paired}{block}",
            "validation": f"{val_docs:,} documents, {len(eval_set):,} {unit}",
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
        # Pairs vary in length (short documents, short_seq_prob): batch similar ones together.
        train_lengths=torch.from_numpy(train_set.lengths) if paired else None,
    )
    with run.write_dir("final") as tmp:
        if tmp is not None:
            model.save_pretrained(str(tmp))
            save_tokenizer(tokenizer, tmp)
    summary = {
        **result["eval"].metrics,  # loss and perplexity; the pair objectives' terms too
        "steps": result["steps"],
        "tokens": result["tokens"],
        "train_seconds": round(result["train_seconds"], 3),
        "tokens_per_s": round(result["tokens_per_s"], 1),
        "parameters": params,
    }
    run.write_summary(summary)
    console.table("summary", summary)
    console.line(f"run directory: {run.path}  (final model: {run.final})")
    accelerator.end_training()
    return summary


def _examples(cfg: PretrainConfig, split, tokenizer, cache: Path, what: str):
    """Packed blocks of text, or sentence pairs for the pair objectives."""
    block, objective = cfg.trainer.block_size, cfg.objective
    if objective.name not in PAIRED:
        return BlockDataset(pack_blocks(split, tokenizer, block, cache, what))
    rows = pair_blocks(
        split,
        tokenizer,
        block,
        cache,
        what,
        sentence_order=objective.name is ObjectiveName.mlm_sop,
        rule=cfg.data.sentence_split,
        short_seq_prob=objective.short_seq_prob,
        dupe_factor=objective.dupe_factor,
        seed=cfg.trainer.seed,
    )
    return PairDataset(rows)
