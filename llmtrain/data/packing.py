"""Tokenise a corpus once (cached through `datasets`) and pack it into fixed-size token blocks.

Documents are concatenated with the tokenizer's own separators ([CLS] … [SEP] for BERT, an
end-of-text token after each GPT document) and cut into `block_size` blocks with no padding.
Blocks are stored as a .npy file in the cache and memory-mapped, so a large corpus does not sit
in RAM and a rerun skips both steps.

`data.packing=document` keeps the same blocks and adds each token's position within its
document (restarting at every document start and every block start), from which the objective
builds block-diagonal attention: no token sees another document's tokens, and no padding is
needed. A document cut by a block boundary continues in the next block as its own segment.
For a model that cannot take such attention, each block holds one document (or one
`block_size` piece of it) and the rest is padding, which the attention mask and the loss ignore.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from transformers import PreTrainedTokenizerBase

from llmtrain.atomic import atomic_file
from llmtrain.config import Packing
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
    return cached_map(corpus, encode, Path(cache_dir) / "tokenized", key, "tokenising")


def cached_map(
    corpus: datasets.Dataset, fn: Callable[[dict], dict], where: Path, key: str, desc: str
) -> datasets.Dataset:
    """`corpus.map(fn)` in batches, replacing the columns, cached as `where/<key>.arrow`."""
    path = where / f"{key}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    return corpus.map(
        fn,
        batched=True,
        remove_columns=corpus.column_names,
        cache_file_name=str(path),
        new_fingerprint=key,
        desc=desc,
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


def document_positions(
    corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, block_size: int, cache_dir: Path
) -> np.ndarray:
    """Each packed token's position in its document segment, shaped and cut like pack_blocks's
    blocks (uint16, memory-mapped)."""
    tokenized = tokenize(corpus, tokenizer, cache_dir)
    path = Path(cache_dir) / "blocks" / f"{tokenized._fingerprint}-b{block_size}-positions.npy"
    if not path.exists():
        lengths = pc.list_value_length(tokenized.data.column("input_ids")).to_numpy()
        n_blocks = int(lengths.sum()) // block_size
        index = np.arange(n_blocks * block_size)
        starts = np.zeros(len(index), dtype=bool)
        doc_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        starts[doc_starts[doc_starts < len(index)]] = True
        starts[::block_size] = True
        last_start = np.maximum.accumulate(np.where(starts, index, 0))
        positions = (index - last_start).astype(np.uint16).reshape(n_blocks, block_size)
        save_atomic(path, positions)
    return np.load(path, mmap_mode="r")


def padded_documents(
    corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, block_size: int, cache_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    """One document piece per row (documents cut every `block_size` tokens), padded: the rows
    and each row's count of real tokens (memory-mapped)."""
    tokenized = tokenize(corpus, tokenizer, cache_dir)
    stem = Path(cache_dir) / "blocks" / f"{tokenized._fingerprint}-b{block_size}-padded"
    rows_path, lengths_path = Path(f"{stem}.npy"), Path(f"{stem}-lengths.npy")
    if not lengths_path.exists():
        column = tokenized.data.column("input_ids")
        ids = pc.list_flatten(column).to_numpy()
        doc_lengths = pc.list_value_length(column).to_numpy().astype(np.int64)
        pieces = -(-doc_lengths // block_size)  # ceil
        first_row = np.concatenate([[0], np.cumsum(pieces)[:-1]])
        doc = np.repeat(np.arange(len(doc_lengths)), doc_lengths)
        offset = np.arange(len(ids)) - np.repeat(np.cumsum(doc_lengths) - doc_lengths, doc_lengths)
        dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.int32
        rows = np.full((int(pieces.sum()), block_size), pad_id(tokenizer), dtype=dtype)
        rows[first_row[doc] + offset // block_size, offset % block_size] = ids
        lengths = np.bincount(first_row[doc] + offset // block_size, minlength=len(rows))
        save_atomic(rows_path, rows)
        save_atomic(lengths_path, lengths.astype(np.int32))  # written last: marks both done
    return np.load(rows_path, mmap_mode="r"), np.load(lengths_path, mmap_mode="r")


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id padding takes: the tokenizer's padding token, else its end-of-sequence token (a
    GPT-2 tokenizer has no padding token); padding is never attended to nor scored."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def packed_dataset(
    corpus: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    cache_dir: Path,
    what: str,
    packing: Packing,
    block_diagonal: bool = True,
) -> BlockDataset:
    """The corpus as training examples, packed as `data.packing` says (`block_diagonal`: whether
    the model can take block-diagonal attention; if not, documents are padded instead)."""
    blocks = pack_blocks(corpus, tokenizer, block_size, cache_dir, what)
    if packing is Packing.concat:
        return BlockDataset(blocks)
    if not block_diagonal:
        rows, lengths = padded_documents(corpus, tokenizer, block_size, cache_dir)
        return BlockDataset(rows, lengths=lengths)
    return BlockDataset(blocks, document_positions(corpus, tokenizer, block_size, cache_dir))


def save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array)


class BlockDataset(torch.utils.data.Dataset):
    """Packed blocks as examples `{"input_ids": LongTensor[block_size]}`, with
    `"position_ids"` (positions within each document) for document packing, or an
    `"attention_mask"` (1 on the first `lengths[i]` tokens) for padded documents."""

    def __init__(
        self,
        blocks: np.ndarray,
        positions: np.ndarray | None = None,
        lengths: np.ndarray | None = None,
    ) -> None:
        self.blocks, self.positions, self.lengths = blocks, positions, lengths

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        example = {"input_ids": torch.from_numpy(self.blocks[i].astype(np.int64))}
        if self.positions is not None:
            example["position_ids"] = torch.from_numpy(self.positions[i].astype(np.int64))
        if self.lengths is not None:
            example["attention_mask"] = (
                torch.arange(self.blocks.shape[1]) < int(self.lengths[i])
            ).long()
        return example

    @property
    def num_tokens(self) -> int:
        """Real tokens (padding not counted)."""
        return int(self.blocks.size if self.lengths is None else np.sum(self.lengths))
