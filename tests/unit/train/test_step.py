"""The training step alone (llmtrain.train.step.optimizer_step): token-exact accumulation, a
non-finite loss skipping the update, and gradient clipping, on a tiny float64 GPT-2 with plain
SGD (lr 1: the update is the gradient), so the checks are exact."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from conftest import tiny_gpt2

from llmtrain.train.contract import IGNORE, Objective
from llmtrain.train.loss_module import LossModule
from llmtrain.train.step import optimizer_step


class Ragged(Objective):
    """Next-token loss on a different number of targets per row (row r scores its last
    `keep[r]` positions), so micro-batches of the same size hold different target counts."""

    def collate(self, examples):
        raise NotImplementedError  # batches are made by hand here

    @staticmethod
    def labels(batch):
        labels = batch["input_ids"][:, 1:].clone()
        for row, keep in enumerate(batch["keep"].tolist()):
            labels[row, : labels.shape[1] - keep] = IGNORE
        return labels

    def targets(self, batch):
        return (self.labels(batch) != IGNORE).sum()

    def loss(self, model, batch):
        labels = self.labels(batch)
        logits = model(input_ids=batch["input_ids"]).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).double(), labels.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return loss, (labels != IGNORE).sum()


class PoisonedAt(Ragged):
    """The loss of the micro-batches whose first token is `bad` made NaN."""

    def __init__(self, bad: int) -> None:
        self.bad = bad

    def loss(self, model, batch):
        loss, n = super().loss(model, batch)
        return (loss * float("nan") if int(batch["input_ids"][0, 0]) == self.bad else loss), n


def _batch(first: int, keep: list[int]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(first)
    ids = torch.randint(1, 64, (len(keep), 12), generator=g)
    ids[0, 0] = first
    return {"input_ids": ids, "keep": torch.tensor(keep)}


def _step(micro, objective=None, max_grad_norm=0.0, optimizer="sgd"):
    """One optimizer_step on a fresh (same every call) model: (weights before, after, result)."""
    model = tiny_gpt2(resid_pdrop=0, embd_pdrop=0, attn_pdrop=0).double()
    before = _weights(model)
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
    opt = make(model.parameters(), lr=1.0)
    objective = objective or Ragged()
    module = LossModule(model, objective.loss)
    result = optimizer_step(module, micro, objective, Accelerator(cpu=True), opt, max_grad_norm)
    return before, _weights(model), result, opt


def _weights(model):  # each parameter once (GPT-2's output head is its embedding)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _update(before, after):
    return torch.cat([(after[k] - before[k]).flatten() for k in before])


# Two micro-batches of two rows with 2 and 9 targets per row: a mean of the two micro-batch means
# weights the few targets of the first 4.5 times as much as token-exact accumulation does.
SMALL, LARGE = _batch(1, [2, 2]), _batch(2, [9, 9])
BOTH = {k: torch.cat([SMALL[k], LARGE[k]]) for k in SMALL}


def test_two_micro_batches_update_as_one_batch_of_both():
    before, split_after, (split_sums, _, applied), _ = _step([SMALL, LARGE])
    _, whole_after, (whole_sums, _, _), _ = _step([BOTH])
    assert applied
    split, whole = _update(before, split_after), _update(before, whole_after)
    assert split.abs().max() > 0
    assert torch.allclose(split, whole, rtol=1e-9, atol=1e-12)
    assert torch.allclose(split_sums, whole_sums, rtol=1e-12)  # loss sum, targets, tokens
    assert split_sums[1:].tolist() == [2 * 2 + 2 * 9, BOTH["input_ids"].numel()]

    # what a mean of per-micro-batch means would have done instead: measurably different
    means = [_update(before, _step([b])[1]) for b in (SMALL, LARGE)]
    assert not torch.allclose((means[0] + means[1]) / 2, whole, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_non_finite_loss_skips_the_update(optimizer):
    before, after, (sums, grad_norm, applied), opt = _step(
        [SMALL, LARGE], PoisonedAt(bad=2), optimizer=optimizer
    )
    assert not applied and not torch.isfinite(sums[0])
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not opt.state  # nor did the optimizer count a step
    assert all(p.grad is None for group in opt.param_groups for p in group["params"])


def test_clipping_scales_the_update_to_the_maximum_norm():
    before, plain_after, (_, norm, _), _ = _step([BOTH])
    plain = _update(before, plain_after)
    assert float(norm) == pytest.approx(float(plain.norm()), rel=1e-9)  # SGD, lr 1
    limit = float(norm) / 4
    _, clipped_after, (_, clipped_norm, applied), _ = _step([BOTH], max_grad_norm=limit)
    clipped = _update(before, clipped_after)
    assert applied and float(clipped_norm) == pytest.approx(float(norm), rel=1e-12)  # before
    assert float(clipped.norm()) == pytest.approx(limit, rel=1e-5)
    assert torch.allclose(clipped, plain / 4, rtol=1e-5, atol=1e-12)  # the same direction
    _, loose_after, _, _ = _step([BOTH], max_grad_norm=float(norm) * 2)
    assert torch.equal(_update(before, loose_after), plain)  # under the limit: untouched
