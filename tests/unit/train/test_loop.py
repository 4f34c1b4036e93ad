"""The loop (llmtrain.train.loop.fit): token-exact gradient accumulation, compiled training, and
non-finite batches that skip their step or, too many, stop the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import fit_tiny, tiny_gpt2

from llmtrain.errors import TrainingStopped
from llmtrain.objectives.causal import CausalLM


class RaggedCausalLM(CausalLM):
    """Next-token loss with a different number of targets per sequence, so a mean of
    per-micro-batch means would differ from the token-exact mean."""

    @staticmethod
    def labels(ids):
        labels = ids[:, 1:].clone()
        for row in range(len(ids)):
            labels[row, : int(ids[row, 0]) % 13] = -100
        return labels

    def targets(self, batch):
        return (self.labels(batch["input_ids"]) != -100).sum()

    def loss(self, model, batch):
        ids = batch["input_ids"]
        labels = self.labels(ids)
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), reduction="sum"
        )
        return loss, (labels != -100).sum()


def _train(tmp_path, batch_size: int, grad_accum: int) -> tuple[list[float], dict]:
    model = tiny_gpt2(resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    run, _, _ = fit_tiny(
        tmp_path / f"b{batch_size}-a{grad_accum}",
        RaggedCausalLM(),
        model,
        max_steps=6,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=1e-2,
        save_every=0,
    )
    rows = [json.loads(x) for x in run.metrics.read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"], model.state_dict()


def test_accumulation_is_token_exact(tmp_path):
    one_big, weights_big = _train(tmp_path, batch_size=8, grad_accum=1)
    four_small, weights_small = _train(tmp_path, batch_size=2, grad_accum=4)
    assert np.allclose(one_big, four_small, rtol=1e-5, atol=1e-6), (one_big, four_small)
    # 1e-4, not less: the attention key bias has a true gradient of zero (softmax ignores a shift),
    # so Adam turns float noise there into ~1e-5 steps; every other weight agrees to 1e-6.
    for name, tensor in weights_big.items():
        assert torch.allclose(tensor, weights_small[name], atol=1e-4), name


@pytest.mark.slow  # inductor compiles for ~1 minute on 2 cores
def test_compiled_training_keeps_the_plain_loss_curve(tmp_path):
    runs = {}
    for compiled in (False, True):
        run, _, result = fit_tiny(
            tmp_path / str(compiled), CausalLM(), tiny_gpt2(), save_every=0, compile=compiled
        )
        rows = [json.loads(x) for x in run.metrics.read_text().splitlines()]
        runs[compiled] = [r["loss"] for r in rows if r["split"] == "train"]
    assert np.allclose(runs[False], runs[True], rtol=1e-4), runs
    assert result.first_step_seconds > 0


class Poisoned(CausalLM):
    """Next-token loss made non-finite on the chosen training steps (evaluation untouched)."""

    def __init__(self, bad_steps: set[int]) -> None:
        self.bad_steps, self.calls = bad_steps, 0

    def loss(self, model, batch):
        loss, n = super().loss(model, batch)
        if not model.training:
            return loss, n
        self.calls += 1
        return (loss * float("nan") if self.calls in self.bad_steps else loss), n


def test_a_poisoned_batch_skips_its_step(tmp_path):
    run, model, _ = fit_tiny(tmp_path / "run", Poisoned({3}))
    rows = [json.loads(x) for x in run.metrics.read_text().splitlines() if '"train"' in x]
    assert [r["skipped_steps"] for r in rows] == [0, 0, 1, 1, 1, 1, 1, 1]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(np.isfinite(r["loss"]) for r in rows)


def test_too_many_bad_steps_stop_the_run(tmp_path):
    with pytest.raises(
        TrainingStopped,
        match=r"stopped at step 7: 3 non-finite .* last good checkpoint is .*step-4",
    ):
        fit_tiny(tmp_path / "run", Poisoned({5, 6, 7}), max_bad_steps=3)
