"""One recipe per command: each wires the components together and reads top to bottom."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from llmtrain.config import DistributedConfig, TrainerConfig
from llmtrain.console import Console
from llmtrain.models import count_parameters
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


def finetune_summary(
    task: str,
    main: str,
    result: dict[str, Any],
    best: dict[str, float],
    model: torch.nn.Module,
) -> dict[str, Any]:
    """summary.json of a fine-tuning run: the best model's metrics (`best`, measured on final/)
    and the last evaluation's, with fit()'s counters."""
    return {
        "task": task,
        "main_metric": main,
        "best_step": result["best_step"],
        **{f"best_{k}": v for k, v in best.items()},
        **{f"final_{k}": v for k, v in result["eval"].metrics.items()},
        "steps": result["steps"],
        "tokens": result["tokens"],
        "train_seconds": round(result["train_seconds"], 3),
        "tokens_per_s": round(result["tokens_per_s"], 1),
        "first_step_seconds": round(result["first_step_seconds"], 3),
        "parameters": count_parameters(model),
    }
