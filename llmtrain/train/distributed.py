"""Processes and devices: the Accelerator for a run, built from the `distributed` config group.

The launcher (torchrun, accelerate launch, SLURM through Hydra) starts the processes; this
module only makes them cooperate, through Accelerate's own plugins, and refuses the silent
failure where each launched process would train alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DeepSpeedPlugin,
    DistributedDataParallelKwargs,
    DistributedType,
    FullyShardedDataParallelPlugin,
    broadcast_object_list,
    gather_object,
)

from llmtrain.config import DistributedConfig, Precision, Strategy, TrainerConfig
from llmtrain.errors import ConfigError


def launched_processes() -> int:
    """How many processes the launcher started (torchrun and accelerate set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_accelerator(
    cfg: TrainerConfig,
    dist: DistributedConfig | None = None,
    tracking: dict[str, Any] | None = None,
) -> Accelerator:
    """The Accelerator for this process. Without CUDA it runs on the CPU explicitly: a plain
    Accelerator() under torchrun on CPU lets each rank train alone, without an error.
    `tracking`: the trackers' settings (llmtrain.train.trackers.accelerator_kwargs)."""
    dist = dist or DistributedConfig()
    on_gpu = torch.cuda.is_available()
    if cfg.precision is Precision.fp16 and not on_gpu:
        raise ConfigError("trainer.precision=fp16 needs a GPU; use bf16 on the CPU")
    kwargs: dict = dict(tracking or {})
    if dist.strategy in (Strategy.fsdp, Strategy.deepspeed) and not on_gpu:
        # Accelerate applies these plugins on CUDA only; on the CPU it would quietly run DDP.
        raise ConfigError(
            f"distributed={dist.strategy.value} needs GPUs; on the CPU use distributed=ddp"
        )
    if dist.strategy is Strategy.ddp:
        handler = DistributedDataParallelKwargs(find_unused_parameters=dist.find_unused_parameters)
        kwargs["kwargs_handlers"] = [handler]
    elif dist.strategy is Strategy.fsdp:
        if dist.fsdp_state_dict not in ("full", "sharded"):
            raise ConfigError(f"distributed.fsdp_state_dict={dist.fsdp_state_dict}: full, sharded")
        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            fsdp_version=2,
            auto_wrap_policy="transformer_based_wrap",  # each layer in model._no_split_modules
            state_dict_type=f"{dist.fsdp_state_dict.upper()}_STATE_DICT",
        )
    elif dist.strategy is Strategy.deepspeed:
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ConfigError(
                "distributed=deepspeed needs the deepspeed package: "
                "pip install 'llmtrain[deepspeed]'"
            ) from None
        if dist.zero_stage not in (2, 3):
            raise ConfigError(f"distributed.zero_stage={dist.zero_stage}: 2 or 3")
        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(zero_stage=dist.zero_stage)
    launched = launched_processes()
    try:
        accelerator = Accelerator(
            mixed_precision=cfg.precision.value,
            cpu=not on_gpu,
            dynamo_backend="inductor" if cfg.compile else "no",  # prepare() compiles the model
            **kwargs,
        )
    except ValueError as e:  # e.g. WORLD_SIZE set by hand without the rest of a launch
        raise ConfigError(f"cannot join the {launched} launched processes: {e}") from e
    if dist.strategy is Strategy.fsdp and not sharded_model(accelerator):
        raise ConfigError(  # Accelerate would quietly train unsharded
            "distributed=fsdp needs a launcher, even on one GPU: "
            "torchrun --nproc_per_node N -m llmtrain … or accelerate launch -m llmtrain …"
        )
    if launched > 1 and accelerator.num_processes != launched:
        raise ConfigError(
            f"launched as {launched} processes, but they did not join one process group "
            f"({accelerator.num_processes}): each would train alone"
        )
    return accelerator


def sharded_model(accelerator: Accelerator) -> bool:
    """Whether the weights are split over processes (FSDP): only the wrapper's forward sees
    them whole."""
    return accelerator.distributed_type == DistributedType.FSDP


def sharded_state(accelerator: Accelerator) -> bool:
    """Whether checkpoints hold one shard per process (FSDP with sharded state dicts)."""
    plugin = accelerator.state.fsdp_plugin if sharded_model(accelerator) else None
    return plugin is not None and "SHARDED" in str(plugin.state_dict_type)


def from_main(accelerator: Accelerator, value: Any) -> Any:
    """Rank 0's `value` (picklable), on every rank: what the main process decided."""
    if accelerator.num_processes == 1:
        return value
    chosen = [value]
    broadcast_object_list(chosen, from_process=0)
    return chosen[0]


def shared_run_dir(accelerator: Accelerator, run_dir: Path) -> Path:
    """Rank 0's run directory, for every rank (the others' Hydra wrote nowhere)."""
    return Path(from_main(accelerator, str(run_dir)))


def gather(accelerator: Accelerator, value: object) -> list:
    """`value` from every rank, in rank order (on every rank)."""
    if accelerator.num_processes == 1:
        return [value]
    return gather_object([value])
