"""The checkpoint format: one directory per step, complete or absent.

    model.safetensors   weights (tied weights stored once)
    optimizer.pt        optimizer state, keyed by parameter name
    shards/             instead of both, with FSDP's sharded state dicts: one file per process
    scheduler.pt        schedule state
    scaler.pt           fp16's gradient scaler (when there is one)
    rng.pt              python, numpy, torch (and CUDA) generator states
    trainer_state.json  the loop's position and counters, and the run's resolved config
    COMPLETE            written last: every other file's size and sha256

The directory is written beside its final name and renamed into place, so a reader never sees
a half-written one; the manifest in COMPLETE also catches one damaged later. Everything but
the weights is loaded with `torch.load(weights_only=True)`.

Model and optimizer state go through torch.distributed.checkpoint's state-dict API, which
speaks plain, DDP and FSDP-sharded models alike: full state dicts are gathered to rank 0 (so a
checkpoint written by FSDP loads anywhere), sharded ones are written by every process at once.
Every process calls `save_checkpoint` and `load_checkpoint`; only rank 0 writes the small files.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from llmtrain.config import LENGTH_KEYS
from llmtrain.errors import ConfigError
from llmtrain.rundir import RunDir

MARKER = "COMPLETE"
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on rank 0's CPU (empty elsewhere): every process must call
    it, since an FSDP model gathers its shards."""
    return get_model_state_dict(model, options=FULL)


def _aliases(model: torch.nn.Module) -> set[str]:
    """Names of tied parameters after their first name (GPT-2's lm_head.weight, say)."""
    every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    return every - {name for name, _ in model.named_parameters()}


def _optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper -> torch's


def save_checkpoint(
    run: RunDir,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    rng_states: list[dict[str, Any]],
    scaler: Any = None,
    sharded: bool = False,
) -> Path:
    """Write checkpoints/step-<step>/ atomically and return its path (every process calls it).
    `rng_states` holds every process's generators, in rank order (rng_state() on each)."""
    options = StateDictOptions() if sharded else FULL
    weights = get_model_state_dict(model, options=options)
    optim = get_optimizer_state_dict(model, _optimizer(optimizer), options=options)
    with run.write_dir(f"checkpoints/step-{step}") as tmp:
        if sharded:  # every process writes its shard into rank 0's scratch directory
            where = [tmp]
            if dist.is_initialized():
                dist.broadcast_object_list(where, src=0)
            dcp.save({"model": weights, "optimizer": optim}, checkpoint_id=where[0] / "shards")
        if tmp is not None:
            if not sharded:
                aliases = _aliases(model)
                save_file(
                    {k: v.contiguous() for k, v in weights.items() if k not in aliases},
                    str(tmp / "model.safetensors"),
                    metadata={"format": "pt"},
                )
                torch.save(optim, tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save(rng_states, tmp / "rng.pt")
            if scaler is not None:  # fp16's loss scale
                torch.save(scaler.state_dict(), tmp / "scaler.pt")
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            manifest = {str(p.relative_to(tmp)): _digest(p) for p in files}
            (tmp / MARKER).write_text(json.dumps(manifest, indent=2) + "\n")
        if dist.is_initialized():
            dist.barrier()  # rank 0 renames the directory only after every shard is written
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


def finished(run: RunDir, config: dict[str, Any], free: frozenset[str]) -> bool:
    """Whether the run directory holds this run already finished: a summary.json, and a newest
    checkpoint written with the same settings and length of training (a run given more steps
    continues instead)."""
    found = run.list_checkpoints()
    if not run.summary.is_file() or not found or problem(found[-1]) is not None:
        return False
    saved = json.loads((found[-1] / "trainer_state.json").read_text())["config"]
    old, new = _flatten(saved), _flatten(config)
    same_length = all(old.get(key) == new.get(key) for key in LENGTH_KEYS)
    return same_length and not changed_settings(saved, config, free)


def changed_settings(
    saved: dict[str, Any], current: dict[str, Any], free: frozenset[str]
) -> list[str]:
    """Training-relevant keys whose values differ, all but the resume-free keys `free`
    (llmtrain.config.resume_free_keys): 'key (old -> new)'."""
    old, new = _flatten(saved), _flatten(current)
    keys = sorted((old.keys() | new.keys()) - free)
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
    state, with `world`: the number of processes that wrote it (llmtrain.train.state turns its
    data position into this run's when that differs)."""
    path = Path(path)
    rng_states = torch.load(path / "rng.pt", weights_only=True)
    if (path / "shards").is_dir():
        state = {
            "model": get_model_state_dict(model),
            "optimizer": get_optimizer_state_dict(model, _optimizer(optimizer)),
        }
        dcp.load(state, checkpoint_id=path / "shards")
        weights, optim, options = state["model"], state["optimizer"], StateDictOptions()
    else:
        weights = load_file(path / "model.safetensors")
        optim = torch.load(path / "optimizer.pt", weights_only=True)
        options = StateDictOptions(full_state_dict=True, strict=False)
    result = set_model_state_dict(model, weights, options=options)
    if set(result.missing_keys) - _aliases(model) or result.unexpected_keys:
        raise ConfigError(
            f"{path} does not fit this model: missing {sorted(result.missing_keys)}, "
            f"unexpected {sorted(result.unexpected_keys)}"
        )
    set_optimizer_state_dict(model, _optimizer(optimizer), optim, options=options)
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    if rank < len(rng_states):  # a process added since keeps the generators it was seeded with
        _set_rng_state(rng_states[rank])
    if scaler is not None and (path / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
    return {**json.loads((path / "trainer_state.json").read_text()), "world": len(rng_states)}


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
