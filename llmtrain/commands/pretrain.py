"""`llmtrain pretrain`: a language model from raw text (MLM, MLM + NSP/SOP for BERT, CLM for
GPT-2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmtrain import models, objectives, recipes
from llmtrain.config import ObjectiveName, PretrainConfig, Source
from llmtrain.data import corpus, sources, stream, stream_sources
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.mixture import Mixture
from llmtrain.data.packing import Layout, PackedDataset, layout, pad_id
from llmtrain.data.pairs import PairDataset, pair_blocks
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer, save_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.models import build_model, check_objective, count_parameters
from llmtrain.objectives import PAIRED, build_objective
from llmtrain.objectives.inputs import takes_block_diagonal_attention
from llmtrain.objectives.mixture import BySource
from llmtrain.rundir import read_metrics
from llmtrain.session import finish, global_batch, header_rows, start
from llmtrain.train.checkpoint import full_model_state
from llmtrain.train.contract import Stream
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
    if cfg.data.prepare_shard is not None:
        raise ConfigError(
            f"data.prepare_shard={cfg.data.prepare_shard} prepares one share: it applies to "
            "llmtrain prepare, not pretrain (which prepares all that is missing)"
        )
    if cfg.data.source is Source.mixture and cfg.objective.name in PAIRED:
        raise ConfigError(
            f"data=mixture trains on prepared blocks: objective={cfg.objective.name.value} "
            "reads sentence pairs; use objective=mlm or clm"
        )
    if cfg.data.streaming:
        _check_streaming(cfg)
    if not models.source(cfg.model):  # a loaded model brings its tokenizer
        tokenizers.check_config(cfg.tokenizer)


def _check_streaming(cfg: PretrainConfig) -> None:
    if cfg.objective.name in PAIRED:
        raise ConfigError(
            f"data.streaming reads blocks as they come: objective={cfg.objective.name.value} "
            "pairs sentences across the corpus; use objective=mlm or clm"
        )
    if cfg.trainer.epochs is not None:
        raise ConfigError(
            f"trainer.epochs={cfg.trainer.epochs}: a stream's length is unknown until its end; "
            "give trainer.max_steps or trainer.budget"
        )
    if cfg.trainer.num_workers > 1:
        raise ConfigError(
            f"trainer.num_workers={cfg.trainer.num_workers}: a stream is read in order by one "
            "reader; 1 moves reading and tokenising into a worker process"
        )


@dataclass
class _Data:
    """What the data side gives the recipe: the tokenizer, the model it sized, the training set,
    the evaluation splits ("validation" first), documents per split, the header's packing."""

    tokenizer: Any
    model: torch.nn.Module
    train: Any
    evals: dict[str, Any]
    documents: tuple[int, int]
    packing: str = ""
    mixture: Mixture | None = None


def run(
    cfg: PretrainConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    check(cfg)
    accelerator, run, console = start(cfg.trainer, run_dir, cfg.distributed, cfg.logger, resolved)

    paired = cfg.objective.name in PAIRED
    data = (_pairs if paired else _streamed if cfg.data.streaming else _prepared)(
        cfg, accelerator, console
    )
    tokenizer, model, train_set = data.tokenizer, data.model, data.train
    # Special tokens per pair: [CLS] and two [SEP].
    tokens_per_pair = float(train_set.lengths.mean()) - 3 if paired else None
    objective = build_objective(cfg.objective, tokenizer, tokens_per_pair)
    if data.mixture is not None:
        objective = BySource(objective, data.mixture.names)
    streamed = isinstance(train_set, Stream)
    n_examples = None if streamed else len(train_set)
    steps = total_steps(cfg.trainer, n_examples, accelerator.num_processes)
    rows = header_rows("pretrain", overrides, run, accelerator, cfg.trainer)
    rows.update(_header(cfg, objective, data))
    rows["global batch"] = global_batch(cfg.trainer, accelerator, "sequences")
    per_step = cfg.trainer.batch_size * cfg.trainer.grad_accum * accelerator.num_processes
    rows["steps"] = f"{steps:,} ({steps * per_step * cfg.trainer.block_size:,} tokens)"
    console.header("llmtrain pretrain", rows)

    job = Job(cfg.trainer, accelerator, run, console, resolved, steps)
    evaluator = Evaluator(data.evals, objective, cfg.trainer, accelerator)
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
    if data.mixture is not None:
        summary["source_passes"] = data.mixture.passes(result.steps * per_step)
    return finish(cfg, summary, run, console, accelerator, "final model", last)


def _header(cfg: PretrainConfig, objective, data: _Data) -> dict[str, str]:
    """The header's rows of what is trained: model and objective, data and validation."""
    paired, block = cfg.objective.name in PAIRED, cfg.trainer.block_size
    unit = "pairs" if paired else "blocks"
    name = cfg.objective.name.value
    if paired:
        name += f", pair loss weight {objective.pair_weight:.3g}"
    if cfg.objective.whole_word_mask:
        name += ", whole-word masking"
    if isinstance(data.train, Stream):
        what = f"streamed from {data.train.what}, tokenised as read"
    else:
        what = f"{data.documents[0]:,} documents, {data.train.num_tokens:,} tokens, "
        what += f"{len(data.train):,}"
    rows = {
        "model": f"{type(data.model).__name__}, {count_parameters(data.model):,} parameters, "
        f"objective {name}",
        "data": f"{what} {unit} of {'at most ' * paired}{block}{data.packing}",
        "validation": f"{data.documents[1]:,} documents, {len(data.evals['validation']):,} {unit}",
    }
    if data.mixture is not None:
        rows["mixture"] = data.mixture.describe()
    return rows


def _best(run_path: Path) -> dict[str, Any]:
    """The lowest evaluation loss of the run (all attempts, from metrics.jsonl) and its step."""
    evals = [r for r in read_metrics(run_path) if r["split"] == "eval" and r["loss"] is not None]
    best = min(evals, key=lambda r: r["loss"], default={"loss": None, "step": None})
    return {"best_loss": best["loss"], "best_step": best["step"]}


_LAYOUTS = {
    Layout.concat: "concat packing",
    Layout.document: "document packing (block-diagonal attention)",
    Layout.padded: "document packing (one document a block, padded: the model takes no 4D mask)",
}


def _prepared(cfg: PretrainConfig, accelerator, console) -> _Data:
    """Text prepared into token shards (each process its share), packed into blocks."""
    with accelerator.main_process_first():  # rank 0 trains a new tokenizer, the others load it
        plan, tokenizer = corpus.plan(
            cfg.data, cfg.tokenizer, cfg.model, cfg.trainer.seed, models.source(cfg.model)
        )
    model = build_model(cfg.model, cfg.objective.name, tokenizer)
    share = (accelerator.process_index, accelerator.num_processes)
    outcome = corpus.run(plan, cfg.data.num_proc, share, progress=console.preparing())
    console.stop()
    if outcome.prepared:
        console.line(f"prepared {outcome.prepared} shards in {plan.directory}")
    accelerator.wait_for_everyone()  # every process's share is on disk
    kind = layout(cfg.data.packing, takes_block_diagonal_attention(model))

    def packed(tokens, what: str) -> PackedDataset:
        return PackedDataset(tokens, cfg.trainer.block_size, kind, pad_id(tokenizer), what)

    splits = corpus.splits(plan)
    documents = (splits["train"].n_documents, splits["validation"].n_documents)
    data = _Data(tokenizer, model, None, {}, documents, f", {_LAYOUTS[kind]}")
    data.evals["validation"] = packed(splits["validation"], "validation")
    if cfg.data.source is not Source.mixture:
        data.train = packed(splits["train"], "training")
        return data
    by_source = corpus.source_splits(plan)
    for name, parts in by_source.items():
        data.evals[f"validation_{name}"] = packed(parts["validation"], f"{name} validation")
    trains = {name: packed(parts["train"], f"{name} training") for name, parts in by_source.items()}
    weights = {name: src.weight for name, src in sources.mixture_sources(cfg.data).items()}
    data.train = data.mixture = Mixture(trains, weights, cfg.trainer.seed)
    return data


def _streamed(cfg: PretrainConfig, accelerator, console) -> _Data:
    """The corpus read while training: blocks as they come, validation read at the start."""
    source = stream_sources.open_stream(cfg.data, cfg.trainer.seed)
    with accelerator.main_process_first():  # rank 0 trains a new tokenizer, the others load it
        tokenizer = stream_sources.tokenizer(
            source, cfg.data, cfg.tokenizer, cfg.model, models.source(cfg.model)
        )
    model = build_model(cfg.model, cfg.objective.name, tokenizer)
    kind = layout(cfg.data.packing, takes_block_diagonal_attention(model))
    settings = corpus.settings(cfg.data, tokenizer, cfg.trainer.seed)
    block, pad = cfg.trainer.block_size, pad_id(tokenizer)
    validation, documents = stream.validation_blocks(
        source, settings, block, kind, pad, cfg.data.stream_validation_blocks
    )
    index = Path(cfg.data.cache_dir).expanduser() / "streams"
    train = stream.StreamedBlocks(source, settings, block, kind, pad, index)
    return _Data(
        tokenizer, model, train, {"validation": validation}, (0, documents), f", {_LAYOUTS[kind]}"
    )


def _pairs(cfg: PretrainConfig, accelerator, console) -> _Data:
    """Sentence pairs for the pair objectives (NSP, SOP), from documents read into memory."""
    with accelerator.main_process_first():  # rank 0 builds the caches, the others read them
        documents = load_corpus(cfg.data, cfg.trainer.seed)
        tokenizer = build_tokenizer(
            cfg.tokenizer,
            cfg.model.family,
            documents["train"],
            Path(cfg.data.cache_dir).expanduser(),
            max_length=cfg.model.max_position_embeddings,
            fallback_path=models.source(cfg.model),
            trust_remote_code=cfg.model.trust_remote_code,
        )
        model = build_model(cfg.model, cfg.objective.name, tokenizer)
        train, validation = (
            PairDataset(_pair_rows(cfg, documents[split], tokenizer, what))
            for split, what in (("train", "training"), ("validation", "validation"))
        )
    counts = (len(documents["train"]), len(documents["validation"]))
    return _Data(tokenizer, model, train, {"validation": validation}, counts)


def _pair_rows(cfg: PretrainConfig, split, tokenizer, what: str):
    objective = cfg.objective
    return pair_blocks(
        split,
        tokenizer,
        cfg.trainer.block_size,
        Path(cfg.data.cache_dir).expanduser(),
        what,
        sentence_order=objective.name is ObjectiveName.mlm_sop,
        rule=cfg.data.sentence_split,
        short_seq_prob=objective.short_seq_prob,
        dupe_factor=objective.dupe_factor,
        seed=cfg.trainer.seed,
    )
