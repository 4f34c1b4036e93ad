"""Tokenise a corpus once (cached through `datasets`) and pack it into fixed-size token blocks.

Documents are concatenated with the tokenizer's own separators ([CLS] … [SEP] for BERT, an
end-of-text token after each GPT document) and cut into `block_size` blocks with no padding.
Blocks are stored as a .npy file in the cache and memory-mapped, so a large corpus does not sit
in RAM and a rerun skips both steps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from transformers import PreTrainedTokenizerBase

from llmtrain.atomic import atomic_file
from llmtrain.errors import DataError

# Bump when tokenising or packing below changes, so caches built by older code are not reused.
_PACKING_VERSION = 1


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A stable hash of everything that decides how the tokenizer splits text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    spec += json.dumps(tokenizer.special_tokens_map, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def tokenize(
    corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cache_dir: Path
) -> datasets.Dataset:
    """Add `input_ids` per document, with special tokens and an end-of-text token where the
    tokenizer has one; cached by corpus and tokenizer."""
    eos = tokenizer.eos_token_id

    def encode(batch: dict) -> dict:
        ids = tokenizer(
            batch["text"],
            add_special_tokens=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        if eos is not None:
            ids = [x if x and x[-1] == eos else [*x, eos] for x in ids]
        return {"input_ids": ids}

    key = f"{corpus._fingerprint}-{tokenizer_fingerprint(tokenizer)}-v{_PACKING_VERSION}"
    path = Path(cache_dir) / "tokenized" / f"{key}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    return corpus.map(
        encode,
        batched=True,
        remove_columns=corpus.column_names,
        cache_file_name=str(path),
        new_fingerprint=key,
        desc="tokenising",
    )


def pack_blocks(
    corpus: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    cache_dir: Path,
    what: str,
) -> np.ndarray:
    """The corpus as a read-only (n_blocks, block_size) array of token ids, memory-mapped."""
    tokenized = tokenize(corpus, tokenizer, cache_dir)
    path = Path(cache_dir) / "blocks" / f"{tokenized._fingerprint}-b{block_size}.npy"
    if not path.exists():
        ids = pc.list_flatten(tokenized.data.column("input_ids")).to_numpy()
        n_blocks = len(ids) // block_size
        if n_blocks == 0:
            raise DataError(
                f"the {what} corpus has {len(ids)} tokens: fewer than one block of "
                f"trainer.block_size={block_size}"
            )
        dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.int32
        blocks = ids[: n_blocks * block_size].astype(dtype).reshape(n_blocks, block_size)
        save_atomic(path, blocks)
    return np.load(path, mmap_mode="r")


def save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array)


class BlockDataset(torch.utils.data.Dataset):
    """Packed blocks as examples `{"input_ids": LongTensor[block_size]}`."""

    def __init__(self, blocks: np.ndarray) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.from_numpy(self.blocks[i].astype(np.int64))}

    @property
    def num_tokens(self) -> int:
        return int(self.blocks.size)
