"""Training examples cut from a token stream (llmtrain.data.tokens), on the fly: nothing of the
corpus is copied or held in memory beyond the documents' start offsets.

- `concat`: the stream cut into `block_size` blocks with no padding; documents are separated by
  the tokenizer's own separators ([CLS] … [SEP] for BERT, an end-of-text token after each GPT
  document), and attention crosses them.
- `document`: the same blocks plus each token's position within its document (restarting at
  every document start and every block start), from which the objective builds block-diagonal
  attention: no token sees another document's tokens, and no padding is needed. A document cut
  by a block boundary continues in the next block as its own segment.
- `padded`: for a model that cannot take such attention, each example holds one document (or
  one `block_size` piece of it) and the rest is padding, which the attention mask and the loss
  ignore.
"""

from __future__ import annotations

import enum
from typing import Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from llmtrain.config import Packing
from llmtrain.errors import DataError


class Tokens(Protocol):
    """A token stream: its length, its documents' start offsets, and a slice of it."""

    n_tokens: int

    def doc_starts(self) -> np.ndarray: ...

    def read(self, start: int, stop: int) -> np.ndarray: ...


class Layout(enum.Enum):
    concat = "concat"
    document = "document"
    padded = "padded"


def layout(packing: Packing, block_diagonal: bool) -> Layout:
    """What `data.packing` means for a model (`block_diagonal`: whether it takes a 4D mask)."""
    if packing is Packing.concat:
        return Layout.concat
    return Layout.document if block_diagonal else Layout.padded


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id padding takes: the tokenizer's padding token, else its end-of-sequence token (a
    GPT-2 tokenizer has no padding token); padding is never attended to nor scored."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


class PackedDataset(torch.utils.data.Dataset):
    """Examples `{"input_ids": LongTensor[block_size]}`, with `"position_ids"` (positions within
    each document) in the document layout, or an `"attention_mask"` (1 on the real tokens) in
    the padded one."""

    def __init__(
        self,
        tokens: Tokens,
        block_size: int,
        kind: Layout = Layout.concat,
        pad: int = 0,
        what: str = "training",
    ) -> None:
        self.tokens, self.block_size, self.kind, self.pad = tokens, block_size, kind, pad
        self._first_piece: np.ndarray | None = None
        if len(self) == 0:
            raise DataError(
                f"the {what} corpus has {tokens.n_tokens} tokens: fewer than one block of "
                f"trainer.block_size={block_size}"
            )

    def __len__(self) -> int:
        if self.kind is Layout.padded:
            return int(self._pieces()[-1]) if self.tokens.n_tokens else 0
        return self.tokens.n_tokens // self.block_size

    @property
    def num_tokens(self) -> int:
        """Real tokens the examples hold (padding not counted)."""
        if self.kind is Layout.padded:
            return self.tokens.n_tokens
        return len(self) * self.block_size

    def _pieces(self) -> np.ndarray:
        """Padded layout: the number of pieces of all documents up to and including each."""
        if self._first_piece is None:
            starts = self.tokens.doc_starts()
            lengths = np.diff(np.append(starts, self.tokens.n_tokens))
            self._first_piece = np.cumsum(-(-lengths // self.block_size))
        return self._first_piece

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.kind is Layout.padded:
            return self._padded(i)
        start = i * self.block_size
        ids = self.tokens.read(start, start + self.block_size)
        example = {"input_ids": torch.from_numpy(ids.astype(np.int64))}
        if self.kind is Layout.document:
            example["position_ids"] = torch.from_numpy(self._positions(start))
        return example

    def _positions(self, start: int) -> np.ndarray:
        """Each token's position in its document segment (a block start starts one too)."""
        starts = self.tokens.doc_starts()
        lo, hi = np.searchsorted(starts, [start, start + self.block_size])
        index = np.arange(self.block_size)
        is_start = np.zeros(self.block_size, dtype=bool)
        is_start[starts[lo:hi] - start] = True
        is_start[0] = True
        return index - np.maximum.accumulate(np.where(is_start, index, 0))

    def _padded(self, i: int) -> dict[str, torch.Tensor]:
        pieces = self._pieces()
        doc = int(np.searchsorted(pieces, i, side="right"))
        piece = i - (int(pieces[doc - 1]) if doc else 0)
        starts = self.tokens.doc_starts()
        end = int(starts[doc + 1]) if doc + 1 < len(starts) else self.tokens.n_tokens
        start = int(starts[doc]) + piece * self.block_size
        ids = self.tokens.read(start, min(end, start + self.block_size)).astype(np.int64)
        row = np.full(self.block_size, self.pad, dtype=np.int64)
        row[: len(ids)] = ids
        mask = np.zeros(self.block_size, dtype=np.int64)
        mask[: len(ids)] = 1
        return {"input_ids": torch.from_numpy(row), "attention_mask": torch.from_numpy(mask)}
