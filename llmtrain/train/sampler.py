"""Data order: a seeded permutation per epoch, sharded across processes, startable anywhere (a
`Stream` gives its own order, startable anywhere too).

The sampler yields `(epoch, index)` keys; `Keyed` turns a key into the example plus a
`sample_seed` for that (epoch, example), so any randomness an objective draws per example
(MLM masks) is fixed by the data position alone. Starting at batch N of an epoch costs nothing:
the permutation is sliced, no batch is drawn and thrown away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from llmtrain.train.contract import ByEpoch, Stream

EVAL_EPOCH = -1  # the key evaluation uses: the same masks at every evaluation


class EpochSampler(Sampler):
    def __init__(
        self,
        n: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        start: int = 0,
        lengths: torch.Tensor | None = None,
        batch_size: int = 1,
    ) -> None:
        self.n, self.seed, self.epoch = n, seed, epoch
        self.rank, self.world, self.shuffle, self.start = rank, world, shuffle, start
        self.lengths, self.batch_size = lengths, batch_size

    def _indices(self) -> torch.Tensor:
        if not self.shuffle:
            # Evaluation: every example exactly once over all ranks, none repeated as padding.
            return torch.arange(self.n)[self.rank :: self.world]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        per_rank = self.n // self.world  # equal shares, so ranks step together
        mine = order[: per_rank * self.world][self.rank :: self.world]
        if self.lengths is None:
            return mine
        return group_by_length(mine, self.lengths, self.batch_size, g)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self._indices()[self.start :].tolist():
            yield self.epoch, i

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)


def group_by_length(
    order: torch.Tensor,
    lengths: torch.Tensor,
    batch_size: int,
    g: torch.Generator,
    window: int = 50,
) -> torch.Tensor:
    """Reorder so each batch holds examples of similar length (little padding), yet stays
    random: sort within windows of `window` batches, then shuffle the full batches. A ragged
    last batch stays last (training drops it)."""
    chunks = order.split(batch_size * window)
    ordered = torch.cat(
        [c[torch.argsort(lengths[c], descending=True, stable=True)] for c in chunks]
    )
    full = len(ordered) // batch_size * batch_size
    batches = ordered[:full].view(-1, batch_size)
    batches = batches[torch.randperm(len(batches), generator=g)]
    return torch.cat([batches.reshape(-1), ordered[full:]])


class Keyed(Dataset):
    """`dataset[i]` (`dataset[epoch, i]` for a ByEpoch set) plus a `sample_seed` fixed by
    (seed, epoch, i)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        example = dict(self.dataset[key] if isinstance(self.dataset, ByEpoch) else self.dataset[i])
        example["sample_seed"] = sample_seed(self.seed, epoch, i)
        return example


def sample_seed(seed: int, epoch: int, i: int) -> int:
    return hash((seed, epoch, i)) & 0x7FFF_FFFF_FFFF_FFFF


class StreamView(IterableDataset):
    """One process's examples of a `Stream` for an epoch, from its `start`-th, keyed like
    `Keyed`'s. One reader: the DataLoader runs it in at most one worker."""

    def __init__(
        self,
        stream: Stream,
        seed: int,
        epoch: int,
        rank: int,
        world: int,
        start: int,
        batch_size: int,
    ) -> None:
        self.stream, self.seed, self.epoch = stream, seed, epoch
        self.where = (rank, world, start, batch_size)

    def __iter__(self) -> Iterator[dict]:
        for position, example in self.stream.examples(self.epoch, *self.where):
            yield {**example, "sample_seed": sample_seed(self.seed, self.epoch, position)}


def make_loader(
    dataset: Dataset,
    collate: Callable[[list[dict]], dict],
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int,
    world: int,
    shuffle: bool,
    start_batch: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    lengths: torch.Tensor | None = None,
) -> DataLoader:
    # Its own generator: creating an iterator must not draw from the global RNG, or a
    # resumed run's dropout would differ from the uninterrupted run's.
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if isinstance(dataset, Stream):
        view = StreamView(dataset, seed, epoch, rank, world, start_batch * batch_size, batch_size)
        return DataLoader(
            view,
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=min(num_workers, 1),
            pin_memory=pin_memory,
            generator=generator,
        )
    sampler = EpochSampler(
        len(dataset),
        seed=seed,
        epoch=epoch,
        rank=rank,
        world=world,
        shuffle=shuffle,
        start=start_batch * batch_size,
        lengths=lengths,
        batch_size=batch_size,
    )
    return DataLoader(
        Keyed(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        drop_last=shuffle,  # training drops a ragged last batch; evaluation keeps every example
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
    )
