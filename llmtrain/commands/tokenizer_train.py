"""`llmtrain tokenizer train`: the tokenizer `llmtrain pretrain` would train on the same data and
settings, on its own, saved into <run>/tokenizer/ (AutoTokenizer loads it; `pretrain
tokenizer=pretrained tokenizer.name_or_path=<run>/tokenizer` uses it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmtrain.config import TokenizerTrainConfig, TrainerConfig
from llmtrain.data import sources
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer, save_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.session import header_rows, start


def run(
    cfg: TokenizerTrainConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    if cfg.tokenizer.name_or_path:
        raise ConfigError("tokenizer.name_or_path is set: llmtrain tokenizer train trains one")
    tokenizers.check_config(cfg.tokenizer)
    sources.check_config(cfg.data)
    # pretrain's default seed: the same held-out documents, so the same (cached) tokenizer
    trainer = TrainerConfig()
    accelerator, run, console = start(trainer, run_dir, None, cfg.logger, resolved)
    corpus = load_corpus(cfg.data, trainer.seed)
    console.header(
        "llmtrain tokenizer train",
        {
            **header_rows("tokenizer train", overrides, run, accelerator, trainer),
            "data": f"{len(corpus['train']):,} documents "
            f"({len(corpus['validation']):,} held out for measuring)",
        },
    )
    tokenizer = build_tokenizer(
        cfg.tokenizer,
        cfg.model.family,
        corpus["train"],
        Path(cfg.data.cache_dir).expanduser(),
        max_length=cfg.model.max_position_embeddings,
    )
    with run.write_dir("tokenizer") as tmp:
        if tmp is not None:
            save_tokenizer(tokenizer, tmp)
    # How well it compresses text it was not trained on: characters per token.
    held_out = list(corpus["validation"]["text"])
    tokens = sum(len(ids) for ids in tokenizer(held_out, add_special_tokens=False)["input_ids"])
    summary = {
        "tokenizer": type(tokenizer.backend_tokenizer.model).__name__,
        "vocab_size": len(tokenizer),
        "documents": len(corpus["train"]),
        "held_out_tokens": tokens,
        "chars_per_token": round(sum(map(len, held_out)) / max(tokens, 1), 3),
        "wall_seconds": round(console.elapsed(), 3),
    }
    run.write_summary(summary)
    console.summary("summary", summary, f"tokenizer: {run.path / 'tokenizer'}")
    accelerator.end_training()
    return summary
