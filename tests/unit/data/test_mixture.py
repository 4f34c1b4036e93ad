"""llmtrain.data.mixture: each epoch holds every source's share, a source that runs out starts
its next pass in a new order, and what the loader yields follows the weights closely."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from llmtrain.data.mixture import Mixture, apportion
from llmtrain.train.sampler import make_loader


class Blocks:
    """A source of `n` examples, each naming its source and index."""

    def __init__(self, name: str, n: int) -> None:
        self.name, self.n, self.num_tokens = name, n, n * 4

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"id": (self.name, int(i))}


@pytest.mark.parametrize(
    ("total", "weights"), [(10, [0.7, 0.3]), (7, [1, 1, 1]), (100, [0.999, 0.001])]
)
def test_apportion_adds_up_and_gives_every_source_a_share(total, weights):
    w = np.array(weights, dtype=float)
    quotas = apportion(total, w / w.sum())
    assert quotas.sum() == total and quotas.min() >= 1
    assert np.abs(quotas - total * w / w.sum()).max() <= 1


def test_an_epoch_holds_the_shares_and_a_source_moves_on_to_its_next_pass():
    mix = Mixture({"web": Blocks("web", 90), "code": Blocks("code", 10)}, {"web": 1, "code": 1}, 0)
    assert len(mix) == 100 and list(mix.quotas) == [50, 50]
    epochs = [[mix[e, i]["id"] for i in range(len(mix))] for e in range(2)]
    for epoch in epochs:
        assert Counter(name for name, _ in epoch) == {"web": 50, "code": 50}
    web = [i for e in epochs for name, i in e if name == "web"]
    assert sorted(web[:90]) == list(range(90)) and web[90:] != web[:10]  # a pass, then the next
    code = [i for name, i in epochs[0] if name == "code"]
    assert sorted(code[:10]) == sorted(code[10:20]) == list(range(10)) and code[:10] != code[10:20]
    assert mix[0, 3] == mix[0, 3] and mix.passes(200) == {"web": 100 / 90, "code": 10.0}


def test_the_loader_yields_the_weights_the_same_for_any_process_count():
    sets = {"a": Blocks("a", 300), "b": Blocks("b", 40)}
    mix = Mixture(sets, {"a": 0.7, "b": 0.3}, seed=3)

    def drawn(world: int, batches: int) -> list[str]:
        names = []
        for rank in range(world):
            loader = make_loader(
                mix,
                lambda exs: [ex["id"][0] for ex in exs],
                batch_size=8 // world,
                seed=3,
                epoch=0,
                rank=rank,
                world=world,
                shuffle=True,
            )
            names += [n for _, batch in zip(range(batches), loader, strict=False) for n in batch]
        return names

    one = drawn(1, 40)  # a whole epoch: the shares exactly
    assert abs(one.count("a") / len(one) - 0.7) <= 0.02
    assert sorted(drawn(2, 40)) == sorted(one)  # two processes: the same examples
