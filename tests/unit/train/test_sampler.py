"""llmtrain.train.sampler: data order fixed by the seed, sharded and resumable, length grouping;
and resume without replay: the data position is restored directly, so resuming at step N draws
no batch before the first resumed step, whatever N; and a run interrupted in later epochs, three
times over, ends as the uninterrupted run does (in-process, with a tiny GPT-2 on random blocks)."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
from conftest import fit_tiny, random_blocks

from llmtrain.errors import TrainingStopped
from llmtrain.objectives.causal import CausalLM
from llmtrain.train import sampler
from llmtrain.train.sampler import EpochSampler

# 60 blocks of 16 tokens, batch 4: 15 micro-batches an epoch; 3 a step, so 5 steps an epoch
# and the 20 steps span 4 epochs.
RUN = dict(max_steps=20, grad_accum=3, save_every=4, keep_last=0, warmup_steps=2)


class Counted(torch.utils.data.Dataset):
    """A dataset that counts the examples drawn from it."""

    def __init__(self, dataset) -> None:
        self.dataset, self.drawn = dataset, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        self.drawn += 1
        return self.dataset[i]


class Crash(Exception):
    pass


class Interrupted(CausalLM):
    """Next-token loss that crashes (like kill -9: no checkpoint) or sends itself SIGTERM (the
    loop checkpoints after the step) at the given training forward passes."""

    def __init__(self, crash_at: int | None = None, sigterm_at: int | None = None) -> None:
        self.crash_at, self.sigterm_at, self.calls = crash_at, sigterm_at, 0

    def loss(self, model, batch):
        if model.training:
            self.calls += 1
            if self.calls == self.crash_at:
                raise Crash
            if self.calls == self.sigterm_at:
                os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(model, batch)


def _data():
    return random_blocks(n=60)


def _train_rows(run) -> list[dict]:
    rows = [json.loads(x) for x in run.metrics.read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows if r["split"] == "train"
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (every checkpoint kept)."""
    return fit_tiny(tmp_path_factory.mktemp("reference") / "run", CausalLM(), data=_data(), **RUN)


def test_three_interruptions_in_later_epochs_end_as_the_uninterrupted_run(reference, tmp_path):
    ref_run, ref_model, _ = reference
    run_dir = tmp_path / "run"
    # Forward passes are counted per micro-batch, 3 a step, from where each attempt starts: a
    # crash in step 8 (epoch 1; resumes from step 4), SIGTERM in step 11 (epoch 2; checkpoints
    # step 11), a crash in step 18 (epoch 3; resumes from step 16).
    with pytest.raises(Crash):
        fit_tiny(run_dir, Interrupted(crash_at=3 * 7 + 2), data=_data(), **RUN)
    with pytest.raises(TrainingStopped, match="stopped by SIGTERM at step 11"):
        fit_tiny(run_dir, Interrupted(sigterm_at=3 * (11 - 5) + 2), data=_data(), **RUN)
    with pytest.raises(Crash):
        fit_tiny(run_dir, Interrupted(crash_at=3 * (18 - 12) + 2), data=_data(), **RUN)
    run, model, _ = fit_tiny(run_dir, CausalLM(), data=_data(), **RUN)

    rows = _train_rows(run)
    assert [r["epoch"] for r in rows][-1] == 3  # the run did reach its fourth epoch
    assert rows == _train_rows(ref_run)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), ref_model.state_dict().values(), strict=True)
    )


def test_resuming_at_any_step_draws_only_the_next_steps_batches(reference, tmp_path, monkeypatch):
    yielded = []
    real_iter = sampler.EpochSampler.__iter__

    def counting_iter(self):
        for key in real_iter(self):
            yielded.append(key)
            yield key

    monkeypatch.setattr(sampler.EpochSampler, "__iter__", counting_iter)
    drawn = {}
    for n in (4, 16):  # epoch 0 and epoch 3
        run_dir = tmp_path / f"resume-{n}"
        (run_dir / "checkpoints").mkdir(parents=True)
        shutil.copytree(reference[0].checkpoint_path(n), run_dir / "checkpoints" / f"step-{n}")
        data, before = Counted(_data()), len(yielded)
        # one more step from the checkpoint (max_steps may change on resume)
        fit_tiny(run_dir, CausalLM(), data=data, **{**RUN, "max_steps": n + 1})
        drawn[n] = (data.drawn, len(yielded) - before)
    # the one step's 3 micro-batches of 4, not the n steps before it; and evaluation's keys
    # (the validation split: 60 blocks = 15 batches) are the same for both
    assert drawn[4] == drawn[16] == (3 * 4, 3 * 4 + 64)


def test_sampler_order_is_seeded_sharded_and_resumable():
    order = [i for _, i in EpochSampler(10, seed=3, epoch=0)]
    assert sorted(order) == list(range(10))
    assert order == [i for _, i in EpochSampler(10, seed=3, epoch=0)]
    assert order != [i for _, i in EpochSampler(10, seed=3, epoch=1)]
    assert order[4:] == [i for _, i in EpochSampler(10, seed=3, epoch=0, start=4)]
    shards = [[i for _, i in EpochSampler(10, seed=3, epoch=0, rank=r, world=3)] for r in range(3)]
    assert all(len(s) == 3 for s in shards) and len(set(sum(shards, []))) == 9
    evals = [
        [i for _, i in EpochSampler(10, seed=3, epoch=-1, rank=r, world=3, shuffle=False)]
        for r in range(3)
    ]
    assert sorted(sum(evals, [])) == list(range(10))  # evaluation: every example once


def test_length_grouping_cuts_padding_and_keeps_every_example():
    lengths = torch.randint(5, 60, (1000,))
    grouped = [i for _, i in EpochSampler(1000, seed=1, epoch=0, lengths=lengths, batch_size=10)]
    plain = [i for _, i in EpochSampler(1000, seed=1, epoch=0)]
    assert sorted(grouped) == list(range(1000))

    def padded(order):  # token slots used when each batch pads to its longest example
        batches = torch.tensor(order).view(-1, 10)
        return (lengths[batches].max(1).values * 10).sum().item()

    assert padded(grouped) < 0.6 * padded(plain)
    again = [i for _, i in EpochSampler(1000, seed=1, epoch=0, lengths=lengths, batch_size=10)]
    later = [
        i for _, i in EpochSampler(1000, seed=1, epoch=0, lengths=lengths, batch_size=10, start=300)
    ]
    assert grouped == again and later == grouped[300:]
