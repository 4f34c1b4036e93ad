"""A weighted mixture of training sets (data=mixture): one training set whose epoch holds each
source's share of examples, drawn from the source's own passes.

An epoch of the mixture has as many examples as its sources together, split among them by
weight (largest remainders). Its i-th example is a fixed function of (seed, epoch, i): the k-th
slot of source s in epoch e is the source's draw e * quota + k, which walks through the source
in a seeded order per pass and starts its next pass when one ends. The loop's sampler shuffles
the mixture's indices as any training set's, so the schedule depends on the seed and the global
position alone: the same after resume and for any number of processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from llmtrain.train.contract import ByEpoch


class Mixture(ByEpoch):
    def __init__(self, sets: Mapping[str, Any], weights: Mapping[str, float], seed: int) -> None:
        self.names = list(sets)
        self.sets = [sets[name] for name in self.names]
        self.sizes = [len(s) for s in self.sets]
        share = np.array([weights[name] for name in self.names], dtype=np.float64)
        self.weights = share / share.sum()
        self.quotas = apportion(sum(self.sizes), self.weights)
        self.bounds = np.cumsum(self.quotas)
        self.seed = seed
        self._orders: dict[int, tuple[int, torch.Tensor]] = {}  # source -> (pass, its order)

    def __len__(self) -> int:
        return int(self.bounds[-1])

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.sets)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        s = int(np.searchsorted(self.bounds, i, side="right"))
        slot = i - (int(self.bounds[s - 1]) if s else 0)
        draw = max(epoch, 0) * int(self.quotas[s]) + slot
        passes, j = divmod(draw, self.sizes[s])
        example = dict(self.sets[s][int(self._order(s, passes)[j])])
        example["source"] = s
        return example

    def _order(self, s: int, passes: int) -> torch.Tensor:
        cached = self._orders.get(s)
        if cached is None or cached[0] != passes:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + s) * 1_000_003 + passes)
            cached = self._orders[s] = (passes, torch.randperm(self.sizes[s], generator=g))
        return cached[1]

    def passes(self, examples: int) -> dict[str, float]:
        """How many passes over each source `examples` training examples make."""
        epochs = examples / len(self)
        return {
            n: epochs * int(q) / size
            for n, q, size in zip(self.names, self.quotas, self.sizes, strict=True)
        }

    def describe(self) -> str:
        return ", ".join(
            f"{name} {w:.0%} ({size:,} blocks, {int(q) / size:.2f} passes an epoch)"
            for name, w, q, size in zip(
                self.names, self.weights, self.quotas, self.sizes, strict=True
            )
        )


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """`total` split by `weights` into integers (largest remainders), each at least 1."""
    raw = total * weights
    quotas = np.maximum(np.floor(raw).astype(np.int64), 1)
    by_remainder = np.argsort(-(raw - np.floor(raw)), kind="stable")
    for s in by_remainder[: max(0, total - int(quotas.sum()))]:
        quotas[s] += 1
    return quotas
