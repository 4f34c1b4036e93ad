"""`llmtrain pretrain`: a language model from raw text (MLM, MLM + NSP/SOP for BERT, CLM for
GPT-2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llmtrain import models, objectives, recipes
from llmtrain.config import ObjectiveName, Packing, PretrainConfig
from llmtrain.data import sources
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.packing import packed_dataset
from llmtrain.data.pairs import PairDataset, pair_blocks
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer, save_tokenizer
from llmtrain.models import build_model, check_objective, count_parameters
from llmtrain.objectives import PAIRED, build_objective
from llmtrain.objectives.inputs import takes_block_diagonal_attention
from llmtrain.rundir import read_metrics
from llmtrain.session import finish, global_batch, header_rows, start
from llmtrain.train.checkpoint import full_model_state
from llmtrain.train.evaluator import Evaluator
from llmtrain.train.job import Job, check_trainer, total_steps
from llmtrain.train.loop import fit


def check(cfg: PretrainConfig) -> None:
    """Every mistake the config alone shows, before any data is read."""
    check_trainer(cfg.trainer)
    recipes.require(cfg, "pretrain")
    models.check_config(cfg.model)
    check_objective(cfg.model, cfg.objective.name)
    objectives.check_config(cfg.objective, cfg.trainer.block_size, cfg.data.packing)
    models.check_length(cfg.model, cfg.trainer.block_size, "trainer.block_size")
    sources.check_config(cfg.data)
    if not models.source(cfg.model):  # a loaded model brings its tokenizer
        tokenizers.check_config(cfg.tokenizer)


def run(
    cfg: PretrainConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    check(cfg)
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed, cfg.logger, resolved)
    cache = Path(cfg.data.cache_dir).expanduser()

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
        model = build_model(cfg.model, cfg.objective.name, tokenizer)
        layout = (cfg.data.packing, takes_block_diagonal_attention(model))
        train_set, eval_set = (
            _examples(cfg, corpus[split], tokenizer, cache, what, layout)
            for split, what in (("train", "training"), ("validation", "validation"))
        )
    paired = cfg.objective.name in PAIRED
    # Special tokens per pair: [CLS] and two [SEP].
    tokens_per_pair = float(train_set.lengths.mean()) - 3 if paired else None
    objective = build_objective(cfg.objective, tokenizer, tokens_per_pair)
    steps = total_steps(cfg.trainer, len(train_set), accelerator.num_processes)
    rows = header_rows("pretrain", overrides, run, accelerator, cfg.trainer)
    rows.update(_header(cfg, model, objective, corpus, (train_set, eval_set), layout))
    rows["global batch"] = global_batch(cfg.trainer, accelerator, "sequences")
    sequences = steps * cfg.trainer.batch_size * cfg.trainer.grad_accum * accelerator.num_processes
    rows["steps"] = f"{steps:,} ({sequences * cfg.trainer.block_size:,} tokens)"
    console.header("llmtrain pretrain", rows)

    job = Job(cfg.trainer, accelerator, run, console, resolved, steps)
    evaluator = Evaluator({"validation": eval_set}, objective, cfg.trainer, accelerator)
    # Pairs vary in length (short documents, short_seq_prob): batch similar ones together.
    lengths = torch.from_numpy(train_set.lengths) if paired else None
    result = fit(job, model, objective, train_set, evaluator, lengths)
    weights = full_model_state(model)  # every process: FSDP gathers its shards
    with run.write_dir("final") as tmp:
        if tmp is not None:
            model.save_pretrained(str(tmp), state_dict=weights)
            save_tokenizer(tokenizer, tmp)
    last = result.last_eval.metrics  # loss and perplexity; the pair objectives' terms too
    summary = {
        **last,
        **_best(run.path),
        **result.summary(),
        "wall_seconds": round(console.elapsed(), 3),
        "parameters": count_parameters(model),
    }
    return finish(cfg, summary, run, console, accelerator, "final model", last)


def _header(cfg: PretrainConfig, model, objective, corpus, sets, layout) -> dict[str, str]:
    """The header's rows of what is trained: model and objective, data and validation."""
    train_set, eval_set = sets
    paired, block = cfg.objective.name in PAIRED, cfg.trainer.block_size
    unit = "pairs" if paired else "blocks"
    shown = cfg.objective.name.value
    if paired:
        shown += f", pair loss weight {objective.pair_weight:.3g}"
    if cfg.objective.whole_word_mask:
        shown += ", whole-word masking"
    packing = "" if paired else f", {_packing(*layout)}"
    return {
        "model": f"{type(model).__name__}, {count_parameters(model):,} parameters, "
        f"objective {shown}",
        "data": f"{len(corpus['train']):,} documents, {train_set.num_tokens:,} tokens, "
        f"{len(train_set):,} {unit} of {'at most ' * paired}{block}{packing}",
        "validation": f"{len(corpus['validation']):,} documents, {len(eval_set):,} {unit}",
    }


def _best(run_path: Path) -> dict[str, Any]:
    """The lowest evaluation loss of the run (all attempts, from metrics.jsonl) and its step."""
    evals = [r for r in read_metrics(run_path) if r["split"] == "eval" and r["loss"] is not None]
    best = min(evals, key=lambda r: r["loss"], default={"loss": None, "step": None})
    return {"best_loss": best["loss"], "best_step": best["step"]}


def _packing(packing: Packing, block_diagonal: bool) -> str:
    if packing is Packing.concat:
        return "concat packing"
    if block_diagonal:
        return "document packing (block-diagonal attention)"
    return "document packing (one document a block, padded: the model takes no 4D mask)"


def _examples(cfg: PretrainConfig, split, tokenizer, cache: Path, what: str, layout):
    """Packed blocks of text, or sentence pairs for the pair objectives."""
    block, objective = cfg.trainer.block_size, cfg.objective
    if objective.name not in PAIRED:
        return packed_dataset(split, tokenizer, block, cache, what, *layout)
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
