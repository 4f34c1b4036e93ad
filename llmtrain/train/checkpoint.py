"""The checkpoint format: one directory per step, complete or absent.

    model.safetensors   weights (tied weights stored once)
    optimizer.pt        optimizer state      scheduler.pt   schedule state
    scaler.pt           fp16's gradient scaler (when there is one)
    rng.pt              python, numpy, torch (and CUDA) generator states
    trainer_state.json  the loop's position and counters, and the run's resolved config
    COMPLETE            written last: every other file's size and sha256

The directory is written beside its final name and renamed into place, so a reader never sees
a half-written one; the manifest in COMPLETE also catches one damaged later. Everything but
the weights is loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from llmtrain.config import RESUME_FREE_KEYS
from llmtrain.errors import ConfigError
from llmtrain.rundir import RunDir

MARKER = "COMPLETE"


def save_checkpoint(
    run: RunDir,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    rng_states: list[dict[str, Any]],
    scaler: Any = None,
) -> Path:
    """Write checkpoints/step-<step>/ atomically and return its path. `rng_states` holds every
    process's generators, in rank order (rng_state() on each)."""
    with run.write_dir(f"checkpoints/step-{step}") as tmp:
        if tmp is not None:
            save_model(model, str(tmp / "model.safetensors"))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save(rng_states, tmp / "rng.pt")
            if scaler is not None:  # fp16's loss scale
                torch.save(scaler.state_dict(), tmp / "scaler.pt")
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
            manifest = {p.name: _digest(p) for p in sorted(tmp.iterdir())}
            (tmp / MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
    return run.checkpoint_path(step)


def problem(path: Path) -> str | None:
    """Why a checkpoint directory cannot be used, or None if it is whole."""
    path = Path(path)
    if not (path / MARKER).is_file():
        return "incomplete (no COMPLETE marker)"
    try:
        manifest = json.loads((path / MARKER).read_text())
    except json.JSONDecodeError:
        return "damaged COMPLETE marker"
    for name, expected in manifest.items():
        if not (path / name).is_file():
            return f"{name} is missing"
        if _digest(path / name) != expected:
            return f"{name} is damaged"
    return None


def find_resume(run: RunDir, resume: str, warn: Any) -> Path | None:
    """The checkpoint to continue from: for `auto` the newest whole one in the run directory
    (damaged ones skipped with a `warn`ing), for `none` nothing, else the named one (a
    checkpoint directory, or a run directory's newest), which must be whole."""
    if resume == "none":
        return None
    if resume == "auto":
        for path in reversed(run.list_checkpoints()):
            reason = problem(path)
            if reason is None:
                return path
            warn(f"skipping checkpoint {path}: {reason}")
        return None
    path = Path(resume).expanduser()
    if (path / "checkpoints").is_dir():
        found = RunDir(path, is_main=False).list_checkpoints()
        if not found:
            raise ConfigError(f"trainer.resume={resume}: the run directory has no checkpoints")
        path = found[-1]
    if not path.is_dir():
        raise ConfigError(f"trainer.resume={resume}: no such checkpoint directory")
    reason = problem(path)
    if reason is not None:
        raise ConfigError(f"trainer.resume={resume}: the checkpoint is {reason}")
    return path


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Training-relevant keys whose values differ: 'key (old -> new)'."""
    old, new = _flatten(saved), _flatten(current)
    keys = sorted((old.keys() | new.keys()) - RESUME_FREE_KEYS)
    return [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in keys if old.get(k) != new.get(k)]


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rank: int = 0,
    world: int = 1,
    scaler: Any = None,
) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote (this rank's generators); returns the trainer
    state. The data position is per process, so the number of processes must be the same."""
    path = Path(path)
    rng_states = torch.load(path / "rng.pt", weights_only=True)
    if len(rng_states) != world:
        raise ConfigError(
            f"{path} was written by {len(rng_states)} processes; resume it with "
            f"{len(rng_states)}, not {world}"
        )
    load_model(model, str(path / "model.safetensors"))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    _set_rng_state(rng_states[rank])
    if scaler is not None and (path / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
    return json.loads((path / "trainer_state.json").read_text())


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{path.stat().st_size}:{h.hexdigest()}"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def rng_state() -> dict[str, Any]:
    """This process's generator states."""
    # numpy's key array goes in as a list, so the file loads with weights_only=True
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
