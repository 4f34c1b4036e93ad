"""`llmtrain tokenizer train`: the tokenizer `llmtrain pretrain` would train on the same data and
settings (a `tokenizer.train_sample` of the training documents), on its own, saved into
<run>/tokenizer/ (AutoTokenizer loads it; `pretrain tokenizer=pretrained
tokenizer.name_or_path=<run>/tokenizer` uses it)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

from llmtrain.config import TokenizerTrainConfig, TrainerConfig
from llmtrain.data import corpus, sources, stream_sources
from llmtrain.data import tokenizer as tokenizers
from llmtrain.data.prepare import held_out_documents
from llmtrain.data.tokenizer import save_tokenizer
from llmtrain.errors import ConfigError
from llmtrain.session import header_rows, start

_MEASURED_DOCUMENTS = 2000  # held-out documents for characters per token: enough to be stable


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
    rows = header_rows("tokenizer train", overrides, run, accelerator, trainer)
    rows["data"] = f"{cfg.tokenizer.train_sample / 1e6:,.0f} MB sample of the training documents"
    console.header("llmtrain tokenizer train", rows)
    if cfg.data.streaming:
        source = stream_sources.open_stream(cfg.data, trainer.seed)
        tokenizer = stream_sources.tokenizer(source, cfg.data, cfg.tokenizer, cfg.model)
        unseen = source.validation()
    else:
        plan, tokenizer = corpus.plan(cfg.data, cfg.tokenizer, cfg.model, trainer.seed)
        unseen = held_out_documents(plan.items, plan.settings)
    with run.write_dir("tokenizer") as tmp:
        if tmp is not None:
            save_tokenizer(tokenizer, tmp)
    # How well it compresses text it was not trained on: characters per token.
    held_out = list(islice(unseen, _MEASURED_DOCUMENTS))
    tokens = sum(len(ids) for ids in tokenizer(held_out, add_special_tokens=False)["input_ids"])
    summary = {
        "tokenizer": type(tokenizer.backend_tokenizer.model).__name__,
        "vocab_size": len(tokenizer),
        "held_out_documents": len(held_out),
        "held_out_tokens": tokens,
        "chars_per_token": round(sum(map(len, held_out)) / max(tokens, 1), 3),
        "wall_seconds": round(console.elapsed(), 3),
    }
    run.write_summary(summary)
    console.summary("summary", summary, f"tokenizer: {run.path / 'tokenizer'}")
    accelerator.end_training()
    return summary
