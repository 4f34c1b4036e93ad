"""`python tests/fsdp_on_cpu.py ARGS…` under torchrun: `llmtrain ARGS…` with Accelerate's FSDP2
path forced on the CPU (gloo). Accelerate applies its FSDP plugin on CUDA only (llmtrain
refuses distributed=fsdp on the CPU for that reason), but fully_shard itself runs on the CPU,
so this exercises the real sharding of our loss module, its evaluation and its checkpoints
where CI has no GPU."""

import sys

from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

import llmtrain.train.distributed as distributed
from llmtrain.config import DistributedConfig, Strategy

_make, _sharded = distributed.make_accelerator, distributed.sharded_model


def make_accelerator(cfg, dist=None, tracking=None):
    if dist is None or dist.strategy is not Strategy.fsdp:
        return _make(cfg, dist, tracking)
    accelerator = _make(cfg, DistributedConfig(strategy=Strategy.ddp), tracking)
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        state_dict_type=f"{dist.fsdp_state_dict.upper()}_STATE_DICT",
    )
    if accelerator.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.mixed_precision)
    accelerator.state.fsdp_plugin = plugin
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.forced_fsdp = True  # Accelerate's shared state may be reset later
    return accelerator


distributed.make_accelerator = make_accelerator
distributed.sharded_model = lambda acc: getattr(acc, "forced_fsdp", False) or _sharded(acc)

if __name__ == "__main__":
    from llmtrain.cli import main  # after the patch: the loop imports sharded_model by name

    sys.argv[0] = "llmtrain"
    main()
