"""The end of a sweep (Hydra multirun): one table of every job's overrides and main metric,
printed and written to <sweep>/sweep.md. Hooked in as a Hydra callback (configs/run_dirs.yaml)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory: its overrides, main metric and value (None while running)."""
    rows = []
    jobs = [d for d in Path(sweep_dir).iterdir() if d.is_dir() and d.name.isdigit()]
    for job in sorted(jobs, key=lambda d: int(d.name)):
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
        row: dict[str, Any] = {"job": int(job.name), "overrides": " ".join(overrides)}
        summary_file = job / "summary.json"
        if summary_file.exists():
            summary = json.loads(summary_file.read_text())
            metric = summary.get("main_metric")
            row["metric"] = metric or "loss"
            row["value"] = summary.get(f"best_{metric}") if metric else summary.get("loss")
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| job | overrides | metric | value |", "|---|---|---|---|"]
    for r in rows:
        value = r.get("value")
        shown = "unfinished" if value is None else f"{value:.4f}"
        lines.append(f"| {r['job']} | `{r['overrides']}` | {r.get('metric', '')} | {shown} |")
    return "\n".join(lines) + "\n"


class SweepTable(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if int(os.environ.get("RANK", "0")) > 0:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        table = markdown(sweep_rows(sweep_dir))
        (sweep_dir / "sweep.md").write_text(table)
        print(f"\nsweep {sweep_dir}:\n{table}", flush=True)
