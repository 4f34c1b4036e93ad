"""A pretraining corpus, prepared: the configured source's units (llmtrain.data.sources), a
tokenizer (loaded, or trained on a sample of them), the token shards (llmtrain.data.prepare)
and the two splits as token streams (llmtrain.data.tokens).

Several processes (torchrun) each prepare their share of the shards; `share` says which, and
the caller waits for all of them before `splits`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from llmtrain.config import DataConfig, ModelConfig, TokenizerConfig
from llmtrain.data import sources
from llmtrain.data.prepare import (
    Input,
    Outcome,
    Progress,
    Settings,
    is_complete,
    prepare,
    sample,
    sample_key,
    token_dtype,
)
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.data.tokens import ShardTokens
from llmtrain.errors import ConfigError, DataError

_BYTES_PER_WORKER = 16 << 20  # a few seconds of tokenising on one core


@dataclass(frozen=True)
class Plan:
    """What is to be prepared, and how."""

    items: list[Input]
    settings: Settings
    directory: Path

    @property
    def input_bytes(self) -> int:
        return sum(item.unit.size for item in self.items)


def plan(
    cfg: DataConfig,
    tokenizer_cfg: TokenizerConfig,
    model: ModelConfig,
    seed: int,
    fallback_path: str | None = None,
) -> tuple[Plan, PreTrainedTokenizerBase]:
    """The units and the tokenizer (loaded from `fallback_path`, the model's own, when the
    tokenizer config names none); a new tokenizer, of the model family's kind, is trained on
    `tokenizer.train_sample` bytes of the training documents (cached by that sample's files and
    settings)."""
    items = sources.inputs(cfg, seed)
    reading, budget = reading_settings(cfg, seed), tokenizer_cfg.train_sample
    tokenizer = tokenizer_for(
        cfg,
        tokenizer_cfg,
        model,
        lambda: sample(items, reading, budget),
        sample_key(items, seed, budget),
        fallback_path,
    )
    return _plan(cfg, items, tokenizer, seed), tokenizer


def tokenizer_for(
    cfg: DataConfig,
    tokenizer_cfg: TokenizerConfig,
    model: ModelConfig,
    texts: Callable[[], list[str]],
    fingerprint: str,
    fallback_path: str | None = None,
) -> PreTrainedTokenizerBase:
    """The configured tokenizer (else the one at `fallback_path`), or a new one of the model
    family's kind trained on `texts()`: called only when no tokenizer cached under
    `fingerprint` and the settings exists."""
    return build_tokenizer(
        tokenizer_cfg,
        model.family,
        texts,
        Path(cfg.cache_dir).expanduser(),
        max_length=model.max_position_embeddings,
        fallback_path=fallback_path,
        fingerprint=fingerprint,
        trust_remote_code=model.trust_remote_code,
    )


def plan_for(
    cfg: DataConfig, tokenizer: PreTrainedTokenizerBase, seed: int, need_train: bool = True
) -> Plan:
    """The units to prepare with a tokenizer at hand (`need_train=False`: given validation
    files alone)."""
    return _plan(cfg, sources.inputs(cfg, seed, need_train), tokenizer, seed)


def _plan(cfg: DataConfig, items: list[Input], tokenizer, seed: int) -> Plan:
    directory = Path(cfg.cache_dir).expanduser() / "prepared"
    return Plan(items, settings(cfg, tokenizer, seed), directory)


def reading_settings(cfg: DataConfig, seed: int) -> Settings:
    """How documents are read and held out, before there is a tokenizer."""
    return Settings("", None, "uint32", seed, cfg.text_field, cfg.decode_errors.value)


def settings(cfg: DataConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> Settings:
    """How documents are read, tokenised and held out, for preparation or a stream."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"{type(tokenizer).__name__} is not a fast tokenizer: llmtrain needs one")
    return Settings(
        backend.to_str(),
        tokenizer.eos_token_id,
        token_dtype(len(tokenizer)),
        seed,
        cfg.text_field,
        cfg.decode_errors.value,
    )


def run(
    p: Plan,
    num_proc: int | None,
    share: tuple[int, int] = (0, 1),
    progress: Progress | None = None,
) -> Outcome:
    """Prepare this share's missing shards over `num_proc` processes; null: the machine's cores,
    divided among the processes a launcher started on it (which all prepare at once), and one
    per _BYTES_PER_WORKER of input at most, since starting a worker costs about a second."""
    workers = num_proc
    if workers is None:
        cores = len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        workers = max(1, min(cores, -(-p.input_bytes // share[1] // _BYTES_PER_WORKER)))
    return prepare(p.items, p.settings, p.directory, workers, share, progress)


def splits(p: Plan, need_train: bool = True) -> dict[str, ShardTokens]:
    """The prepared splits; every shard must be complete (all shares done)."""
    return _splits(p, p.items, describe(p), "", need_train)


def source_splits(p: Plan) -> dict[str, dict[str, ShardTokens]]:
    """A mixture's splits, source by source."""
    names = dict.fromkeys(item.source for item in p.items)
    return {
        name: _splits(p, [i for i in p.items if i.source == name], f"data.sources.{name}", name)
        for name in names
    }


def _splits(
    p: Plan, items: list[Input], what: str, source: str, need_train: bool = True
) -> dict[str, ShardTokens]:
    shards = [p.directory / p.settings.key(item) for item in items]
    missing = [s for s in shards if not is_complete(s)]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(shards)} shards are not prepared yet (in {p.directory}): "
            "run llmtrain prepare without data.prepare_shard, or the missing shares"
        )
    found = {name: ShardTokens(shards, name) for name in ("train", "validation")}
    for name, tokens in found.items():
        if tokens.n_tokens == 0 and (need_train or name == "validation"):
            files = f"data.sources.{source}.validation_files" if source else "data.validation_files"
            raise DataError(f"the {name} split of {what} holds no text{_hint(name, files)}")
    return found


def parse_share(value: str | None) -> tuple[int, int]:
    """`data.prepare_shard=I/N` as (I, N); null: all of it."""
    if value is None:
        return 0, 1
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise ConfigError(f"data.prepare_shard={value}: give I/N with 0 <= I < N, e.g. 0/4")
    return index, count


def describe(p: Plan) -> str:
    files = sorted({item.unit.path for item in p.items})
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return f"the corpus ({shown})"


def _hint(split: str, files_key: str) -> str:
    if split == "validation":
        return (
            f": no document was held out; raise data.validation_fraction or give {files_key} "
            "(in .txt files a blank line separates documents)"
        )
    return ""
