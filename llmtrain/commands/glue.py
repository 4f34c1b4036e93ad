"""`llmtrain glue`: one starting model fine-tuned on each GLUE task in turn, then one table.

Each task is a full `llmtrain finetune task=<name>` run with the same command-line overrides
(composed by Hydra exactly as that command would be), in <run>/<task>/. The table's numbers are
read from each task's summary.json. Rerun in the same run directory, the suite skips finished
tasks (summary.json and final/ present) and the unfinished one resumes from its checkpoint.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from llmtrain.commands import run_command
from llmtrain.config import FinetuneConfig, GlueSuiteConfig, settle
from llmtrain.console import Console
from llmtrain.errors import ConfigError, DataError, TrainingStopped
from llmtrain.rundir import RunDir
from llmtrain.session import LOG
from llmtrain.tasks import resume_free_keys, typed
from llmtrain.tasks.glue import GLUE, GlueSpec
from llmtrain.train.checkpoint import changed_settings
from llmtrain.train.distributed import launched_processes

TASK_CONFIG = "config.json"  # each task's resolved config, beside its summary.json


def run(
    cfg: GlueSuiteConfig, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> dict[str, Any]:
    tasks = list(cfg.glue.tasks)
    unknown = [t for t in tasks if t not in GLUE]
    if unknown or not tasks or len(set(tasks)) != len(tasks):
        raise ConfigError(
            f"glue.tasks={tasks}: give each task once, from {', '.join(GLUE)}"
            + (f" ({', '.join(unknown)} is not one)" if unknown else "")
        )
    if launched_processes() > 1:
        # Each task's Accelerator ends its process group; a second task could not rejoin it.
        raise ConfigError(
            "llmtrain glue runs in one process; for several, launch `llmtrain finetune` per task"
        )
    suite = RunDir(run_dir)
    console = Console(log=suite.path / LOG)
    overrides = _shared(overrides)
    rows: dict[str, dict[str, Any]] = {t: {"task": t, "status": "pending"} for t in tasks}
    for number, name in enumerate(tasks, 1):
        console.line(f"glue: task {number} of {len(tasks)}: {name} ({suite.path / name})")
        rows[name] = _task(name, cfg, suite, overrides, console)
        report = write_report(suite, list(rows.values()))
    console.line(report["markdown"].rstrip())
    failed = [r for r in rows.values() if r["status"] == "failed"]
    if failed:
        raise ConfigError(
            f"{len(failed)} of {len(tasks)} tasks failed ({failed[0]['task']}: "
            f"{failed[0]['reason']}); see {suite.path / 'glue.md'}"
        )
    return report["json"]


def _task(
    name: str, cfg: GlueSuiteConfig, suite: RunDir, overrides: list[str], console: Console
) -> dict[str, Any]:
    """Fine-tune on one task (or take its finished result); the task's row of the table."""
    spec = GLUE[name]
    data_dir = None
    if cfg.glue.data_dir:
        data_dir = task_directory(Path(cfg.glue.data_dir).expanduser(), name)
        missing = [f for f in spec.files().values() if not (data_dir / f).is_file()]
        if missing:
            console.warn(f"glue: {name}: missing {', '.join(missing)} in {data_dir}: skipped")
            reason = f"missing {', '.join(str(data_dir / f) for f in missing)}"
            return {"task": name, "status": "missing", "reason": reason}
    task_cfg, task_resolved = _compose(name, data_dir, overrides)
    task_run = RunDir(suite.path / name)
    if task_run.summary.is_file() and task_run.final.is_dir():
        saved_file = task_run.path / TASK_CONFIG
        saved = json.loads(saved_file.read_text()) if saved_file.is_file() else task_resolved
        changed = changed_settings(saved, task_resolved, resume_free_keys())
        if changed:
            raise ConfigError(
                f"{task_run.path} holds {name} finished with other settings: "
                f"{', '.join(changed)}; use a new run directory"
            )
        console.line(f"glue: {name} finished in an earlier run: not rerun")
        summary = json.loads(task_run.summary.read_text())
    else:
        task_run.write_text(TASK_CONFIG, json.dumps(task_resolved, indent=2) + "\n")
        try:
            summary = run_command(
                "finetune", task_cfg, task_run.path, task_resolved, [*overrides, f"task={name}"]
            )
        except TrainingStopped as e:
            raise TrainingStopped(
                f"{name}: {str(e).split('. Run the same command')[0]}. Run the same command "
                f"with hydra.run.dir={suite.path} to continue the suite",
                exit_code=e.exit_code,
            ) from e
        except (ConfigError, DataError) as e:  # this task's data or settings: the rest still run
            console.warn(f"glue: {name} failed: {e}")
            return {"task": name, "status": "failed", "reason": str(e)}
    return score_row(name, spec, summary)


def task_directory(data_dir: Path, name: str) -> Path:
    """The task's directory in GLUE's layout (CoLA/, SST-2/, …), or one named for the task."""
    official = data_dir / GLUE[name].directory
    plain = data_dir / name
    return plain if not official.is_dir() and plain.is_dir() else official


def score_row(name: str, spec: GlueSpec, summary: dict[str, Any]) -> dict[str, Any]:
    """GLUE's official score for a task: the mean of its metrics (CoLA: MCC; MRPC, QQP: F1 and
    accuracy; STS-B: Pearson and Spearman; MNLI: matched and mismatched accuracy; the rest:
    accuracy), from the best model's metrics in summary.json."""
    parts = {key: summary[f"best_{key}"] for key in spec.score}
    return {
        "task": name,
        "status": "done",
        "metric": " / ".join(spec.score),
        "score": statistics.fmean(parts.values()),
        "metrics": parts,
        "steps": summary["steps"],
        "train_seconds": summary["train_seconds"],
        "run_dir": name,
    }


def write_report(suite: RunDir, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """glue.json and glue.md: one row per task and the average over the finished ones."""
    done = [r for r in rows if r["status"] == "done"]
    average = statistics.fmean(r["score"] for r in done) if done else None
    data = {"tasks": rows, "average": average, "tasks_averaged": [r["task"] for r in done]}
    lines = [
        "| task | metric | dev score | metrics | steps | train time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] == "done":
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items())
            cells = [r["metric"], f"{r['score']:.4f}", metrics, str(r["steps"])]
            cells.append(f"{r['train_seconds']:.1f} s")
        else:
            cells = [r["status"], "", r.get("reason", ""), "", ""]
        lines.append(f"| {r['task']} | " + " | ".join(cells) + " |")
    shown = "" if average is None else f"{average:.4f}"
    lines.append(f"| **GLUE average** ({len(done)} of {len(rows)} tasks) | | {shown} | | | |")
    markdown = "\n".join(lines) + "\n"
    suite.write_text("glue.json", json.dumps(data, indent=2) + "\n")
    suite.write_text("glue.md", markdown)
    return {"json": data, "markdown": markdown}


def _shared(overrides: list[str]) -> list[str]:
    """The user's command-line overrides that every task shares (all but glue.*)."""

    def key(override: str) -> str:
        return override.lstrip("+~").split("=", 1)[0]

    return [o for o in overrides if key(o) != "glue" and not key(o).startswith("glue.")]


def _compose(
    name: str, data_dir: Path | None, overrides: list[str]
) -> tuple[FinetuneConfig, dict[str, Any]]:
    """The task's config as `llmtrain finetune task=<name> OVERRIDES` composes it."""
    from hydra import compose
    from omegaconf import OmegaConf

    cfg = compose(config_name="finetune", overrides=[*overrides, f"task={name}"])
    settle(cfg, overrides)  # as `llmtrain finetune` would: values given win over defaults
    schema = typed(cfg)
    schema.task.data_dir = str(data_dir) if data_dir else None  # set, not parsed: any path works
    cfg.task.data_dir = schema.task.data_dir
    return schema, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
