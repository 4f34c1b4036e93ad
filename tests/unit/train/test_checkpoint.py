"""llmtrain.train.checkpoint: a full disk leaves the previous checkpoint intact."""

from __future__ import annotations

import errno

import pytest
import torch
from conftest import fit_tiny

from llmtrain.objectives.causal import CausalLM
from llmtrain.train import checkpoint


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    run, model, _ = fit_tiny(tmp_path / "run", CausalLM())
    before = {p.name: p.read_bytes() for p in (run.checkpoints / "step-8").iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "optimizer.pt")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_checkpoint(run, 8, model, optimizer, None, {}, [])
    assert {p.name: p.read_bytes() for p in (run.checkpoints / "step-8").iterdir()} == before
    assert checkpoint.problem(run.checkpoints / "step-8") is None
    assert not list(run.checkpoints.glob(".*"))  # no half-written directory left behind
