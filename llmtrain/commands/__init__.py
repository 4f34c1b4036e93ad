"""One recipe per command: each wires the components together and reads top to bottom."""

from __future__ import annotations

from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import set_seed

from llmtrain.config import DistributedConfig, TrainerConfig
from llmtrain.console import Console
from llmtrain.rundir import RunDir
from llmtrain.train.distributed import make_accelerator, shared_run_dir


def start(
    trainer: TrainerConfig, run_dir: Path, distributed: DistributedConfig | None = None
) -> tuple[Accelerator, RunDir, Console]:
    """What every command begins with: the processes joined, the seed set, the run directory
    (rank 0's, for all ranks) and the console (rank 0 speaks)."""
    accelerator = make_accelerator(trainer, distributed)
    set_seed(trainer.seed)
    run = RunDir(shared_run_dir(accelerator, run_dir), accelerator.is_main_process)
    return accelerator, run, Console(accelerator.is_main_process)
