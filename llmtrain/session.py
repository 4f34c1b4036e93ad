"""What every training command shares: the start (processes joined, seed, run directory,
console, trackers), the header's common rows, and the finish (summary.json, the summary table,
the recipe's verdict, a diverged run's exit)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtrain.config import ConsoleMode, DistributedConfig, LoggerConfig, TrainerConfig
from llmtrain.errors import AlreadyComplete, TrainingStopped

LOG = "run.log"  # every line the run printed (<run>/run.log)

if TYPE_CHECKING:  # imported where used: `llmtrain report` needs no torch
    from accelerate import Accelerator

    from llmtrain.console import Console
    from llmtrain.rundir import RunDir
    from llmtrain.train.job import FitResult


def start(
    trainer: TrainerConfig,
    run_dir: Path,
    distributed: DistributedConfig | None = None,
    logger: LoggerConfig | None = None,
    config: dict[str, Any] | None = None,
    resume_free: frozenset[str] | None = None,
) -> tuple[Accelerator, RunDir, Console]:
    """What every command begins with: the processes joined, the seed set, the run directory
    (rank 0's, for all ranks), the trackers opened with the run's `config`, and the console
    (rank 0 speaks). A run directory that holds this very run finished (same `config` but for
    the `resume_free` keys, by default llmtrain.config.resume_free_keys()) ends it here."""
    from accelerate.utils import set_seed

    from llmtrain.config import resume_free_keys
    from llmtrain.console import Console
    from llmtrain.rundir import RunDir
    from llmtrain.train.checkpoint import finished
    from llmtrain.train.distributed import from_main, make_accelerator, shared_run_dir
    from llmtrain.train.trackers import accelerator_kwargs, start_trackers

    accelerator = make_accelerator(trainer, distributed, accelerator_kwargs(logger, run_dir))
    set_seed(trainer.seed)
    run = RunDir(shared_run_dir(accelerator, run_dir), accelerator.is_main_process)
    free = resume_free_keys() if resume_free is None else resume_free
    if trainer.resume == "auto" and from_main(accelerator, finished(run, config or {}, free)):
        raise AlreadyComplete(
            f"{run.path} holds this run finished (summary.json, final/): nothing to do. To train "
            "again, give another hydra.run.dir, or trainer.resume=none trainer.overwrite=true"
        )
    mode = logger.console if logger else ConsoleMode.auto
    console = Console(accelerator.is_main_process, mode, log=run.path / LOG)
    start_trackers(accelerator, logger, run.path, config or {})
    return accelerator, run, console


def header_rows(
    command: str,
    overrides: list[str],
    run: RunDir,
    accelerator: Accelerator,
    trainer: TrainerConfig,
) -> dict[str, str]:
    """The header's first rows, the same for every command: the command line as it took
    effect, where its outputs go, and on what it runs."""
    processes = accelerator.num_processes
    return {
        "command": " ".join(["llmtrain", command, *overrides]),
        "run directory": str(run.path),
        "device": f"{accelerator.device} x {processes} process{'es' if processes > 1 else ''}, "
        f"precision {trainer.precision.value}",
    }


def global_batch(trainer: TrainerConfig, accelerator: Accelerator, unit: str) -> str:
    size = trainer.batch_size * trainer.grad_accum * accelerator.num_processes
    return (
        f"{size} {unit} ({trainer.batch_size} x {trainer.grad_accum} accumulated "
        f"x {accelerator.num_processes} processes)"
    )


def finetune_summary(
    task: str,
    main: str,
    result: FitResult,
    best: dict[str, float],
    model: Any,
    wall_seconds: float,
) -> dict[str, Any]:
    """summary.json of a fine-tuning run: the best model's metrics (`best`, measured on final/)
    and the last evaluation's, with fit()'s counters (a budget run's budget too)."""
    from llmtrain.models import count_parameters

    return {
        "task": task,
        "main_metric": main,
        "best_step": result.best_step,
        **{f"best_{k}": v for k, v in best.items()},
        **{f"final_{k}": v for k, v in result.last_eval.metrics.items()},
        **result.summary(),
        "wall_seconds": round(wall_seconds, 3),
        "parameters": count_parameters(model),
    }


def finish(
    cfg: Any,
    summary: dict[str, Any],
    run: RunDir,
    console: Console,
    accelerator: Accelerator,
    final: str,
    last_eval: dict[str, float],
) -> dict[str, Any]:
    """The end of a training command: the recipe's verdict (if any), summary.json, the summary
    table with where `final` (a description of final/) and the trackers' files are. A run whose
    last evaluation (`last_eval`) is not finite diverged: it says so and exits non-zero."""
    import math

    from llmtrain import recipes
    from llmtrain.train import trackers

    broken = [
        f"{k} {v}" for k, v in last_eval.items() if isinstance(v, float) and not math.isfinite(v)
    ]
    summary["last_eval_finite"] = not broken
    recipes.report(cfg.recipe, summary, console)
    run.write_summary(summary)
    console.summary(
        "summary",
        summary,
        f"run directory: {run.path}  ({final}: {run.final})",
        *trackers.where(cfg.logger, run.path),
    )
    accelerator.end_training()
    if broken:
        raise TrainingStopped(
            f"the last evaluation is not finite ({', '.join(broken)}): training diverged "
            f"({summary.get('skipped_steps', 0)} of {summary.get('steps', '?')} steps skipped "
            "for a non-finite loss or gradient); try a lower trainer.lr"
        )
    return summary
