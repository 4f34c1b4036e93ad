"""The checkpoint format: one directory per step, complete or absent.

model.safetensors   weights (tied weights stored once)
optimizer.pt        optimizer state      scheduler.pt   schedule state
rng.pt              python, numpy, torch (and CUDA) generator states
trainer_state.json  step, data position (epoch, batch in epoch), tokens, and the run config
COMPLETE            written last: a reader trusts only a directory that has it
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from llmtrain.rundir import RunDir

MARKER = "COMPLETE"


def save_checkpoint(
    run: RunDir,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    """Write checkpoints/step-<step>/ atomically and return its path."""
    with run.write_dir(f"checkpoints/step-{step}") as tmp:
        if tmp is not None:
            save_model(model, str(tmp / "model.safetensors"))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save(_rng_state(), tmp / "rng.pt")
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
            (tmp / MARKER).write_text("")
    return run.checkpoint_path(step)


def is_complete(path: Path) -> bool:
    return (Path(path) / MARKER).is_file()


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote; returns the trainer state."""
    path = Path(path)
    load_model(model, str(path / "model.safetensors"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    _set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    return json.loads((path / "trainer_state.json").read_text())


def _rng_state() -> dict[str, Any]:
    # numpy's key array goes in as a list, so the file loads with weights_only=True.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (kind, keys.tolist(), pos, has_gauss, cached)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
