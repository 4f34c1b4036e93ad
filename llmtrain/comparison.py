"""Runs side by side: each run's overrides and main metric in one table, sorted by that metric,
and plots of their curves. Reads only what runs write (.hydra/overrides.yaml, metrics.jsonl,
summary.json, status.json, the holder of .lock), so it works on runs in progress and on whole
sweep directories."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmtrain.errors import ConfigError
from llmtrain.rundir import holder, read_metrics, run_status

LOSS = "loss"  # language-model runs: the main metric is the evaluation loss (lower is better)


@dataclass
class RunRecord:
    path: Path
    overrides: list[str]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] | None
    label: str = ""
    shown_overrides: list[str] = field(default_factory=list)
    holder: dict[str, Any] | None = None  # the live process writing the run, if any
    ended: dict[str, Any] | None = None  # status.json: how the last launch ended unfinished

    @property
    def evals(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["split"] == "eval"]

    @property
    def train(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["split"] == "train"]

    @property
    def metric(self) -> str:
        """The main metric: the summary's, else the first task metric an evaluation logged."""
        if self.summary and self.summary.get("main_metric"):
            return self.summary["main_metric"]
        for row in self.evals:
            for key in row:
                if key not in ("step", "split", "loss", "perplexity"):
                    return key
        return LOSS

    @property
    def value(self) -> float | None:
        """What final/ holds or will hold: the best task metric; a language model's last loss."""
        m = self.metric
        if self.summary:
            return self.summary.get(LOSS if m == LOSS else f"best_{m}")
        values = [r[m] for r in self.evals if r.get(m) is not None]
        if not values:
            return None
        return values[-1] if m == LOSS else max(values)

    @property
    def status(self) -> str:
        """running (a live holder), finished or diverged (summary.json), stopped or failed
        (status.json), else interrupted: killed, or its machine went down."""
        if self.holder is not None:
            return f"running{_at(max((r['step'] for r in self.rows), default=None))}"
        ended = self.ended
        # a diverged run writes its summary, then fails; a later launch may stop it instead
        diverged = self.summary and self.summary.get("last_eval_finite") is False
        if diverged and (ended is None or ended.get("status") == "failed"):
            return "diverged"
        if ended is not None:  # a launch after the summary's, that did not finish
            return f"{ended.get('status') or 'ended'}{_at(ended.get('step'))}"
        if self.summary:
            return "finished"
        return f"interrupted{_at(max((r['step'] for r in self.rows), default=None))}"

    def last(self, rows: list[dict[str, Any]], key: str) -> Any:
        return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def _at(step: int | None) -> str:
    return "" if step is None else f" (step {step})"


def find_runs(paths: list[str]) -> list[RunRecord]:
    """The runs at or beneath each path: directories with a .hydra/ config or a metrics.jsonl."""
    if not paths:
        raise ConfigError("give run or sweep directories: llmtrain report DIR [DIR …]")
    found: dict[Path, None] = {}
    for given in paths:
        # absolute, so relative and absolute DIRs mix and a run given twice is listed once
        path = Path(os.path.abspath(Path(given).expanduser()))
        if not path.is_dir():
            raise ConfigError(f"{given}: no such directory")
        marks = [*path.rglob("metrics.jsonl"), *path.rglob(".hydra/config.yaml")]
        dirs = sorted({m.parent.parent if m.parent.name == ".hydra" else m.parent for m in marks})
        if not dirs:
            raise ConfigError(f"{given}: no llmtrain runs there (no metrics.jsonl or .hydra/)")
        found.update(dict.fromkeys(dirs))
    runs = [_load(d) for d in found]
    _label(runs)
    return runs


def _load(path: Path) -> RunRecord:
    overrides: list[str] = []
    file = path / ".hydra" / "overrides.yaml"
    if file.is_file():
        from omegaconf import OmegaConf

        overrides = [str(o) for o in OmegaConf.load(file)]
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    rows = read_metrics(path)
    if summary and any(r["step"] > summary.get("steps", math.inf) for r in rows):
        summary = None  # a shorter launch's: the run was given more steps and trained on
    return RunRecord(path, overrides, rows, summary, holder=holder(path), ended=run_status(path))


def _label(runs: list[RunRecord]) -> None:
    """Name runs by their path below the common directory, show the overrides that differ."""
    base = Path(os.path.commonpath([r.path for r in runs])) if len(runs) > 1 else None
    common = set.intersection(*(set(r.overrides) for r in runs)) if len(runs) > 1 else set()
    for r in runs:
        r.label = str(r.path.relative_to(base)) if base else r.path.name
        r.shown_overrides = [o for o in r.overrides if o not in common]


def sort_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """By main metric, best first (highest task metric, lowest loss); unmeasured runs last."""

    def key(r: RunRecord) -> tuple:
        v = r.value
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        return (r.metric, missing, 0 if missing else (v if r.metric == LOSS else -v))

    return sorted(runs, key=key)


def markdown(runs: list[RunRecord]) -> str:
    """The table: one row per run, sorted by main metric."""
    common = sorted(set(runs[0].overrides) - set(runs[0].shown_overrides))
    lines = [f"common overrides: `{' '.join(common)}`", ""] if common else []
    lines += [
        "| run | overrides | status | metric | value | train loss | eval loss | steps | tokens "
        "| tokens/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sort_runs(runs):
        s = r.summary or {}
        cells = [
            r.label,
            f"`{' '.join(r.shown_overrides)}`" if r.shown_overrides else "",
            r.status,
            r.metric,
            _num(r.value),
            _num(r.last(r.train, "loss")),
            _num(r.last(r.evals, "loss")),
            _num(s.get("steps", max((x["step"] for x in r.rows), default=None))),
            _num(s.get("tokens", r.last(r.train, "tokens"))),
            _num(s.get("tokens_per_s", r.last(r.train, "tokens_per_s"))),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and abs(value) >= 1000):
        return f"{value:,.0f}"
    return f"{value:.4g}"


def plot(runs: list[RunRecord], out: Path) -> list[Path]:
    """loss.png (train and eval loss) and <metric>.png for each task metric: one line per run,
    over steps. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    written = []
    labels = dict(zip((r.path for r in runs), legend_labels(runs), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, split in zip(axes, ("train", "eval"), strict=True):
        for r in runs:
            _line(ax, r, split, LOSS, labels[r.path])
        _finish(ax, f"{split} loss", LOSS)
    written.append(_save(fig, out / "loss.png"))
    for metric in sorted({r.metric for r in runs} - {LOSS}):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in runs:
            if r.metric == metric:
                _line(ax, r, "eval", metric, labels[r.path])
        _finish(ax, f"eval {metric}", metric)
        written.append(_save(fig, out / f"{metric}.png"))
    return written


def legend_labels(runs: list[RunRecord], width: int = 60) -> list[str]:
    """Each run's label in the plots: its label in the table, whole (labels are unique), and
    the overrides that differ, shortened: a key by its last part where that names one setting,
    a long value less the beginning it shares with the other runs' values for that key; whole
    overrides up to `width` characters, then … (a legend wider than its plot is not drawn)."""
    parsed = [[_split(o) for o in r.shown_overrides] for r in runs]
    keys = {key for run in parsed for _, key, _ in run}
    values: dict[str, set[str]] = {}
    for run in parsed:
        for _, key, value in run:
            if value is not None:
                values.setdefault(key, set()).add(value)
    labels = []
    for r, run in zip(runs, parsed, strict=True):
        shown = [
            prefix
            + _short_key(key, keys)
            + ("" if value is None else "=" + _short_value(value, values[key]))
            for prefix, key, value in run
        ]
        labels.append(" ".join([r.label, *_fit(shown, width)]))
    return labels


def _fit(words: list[str], width: int) -> list[str]:
    """The first `words` that fit in `width` characters, and … for the rest."""
    for n in range(len(words), -1, -1):
        if len(" ".join(words[:n])) <= width:
            return words if n == len(words) else [*words[:n], "…"]
    return ["…"]


def _split(override: str) -> tuple[str, str, str | None]:
    """A Hydra override as (+, ++ or ~ prefix, key, value; None for a deletion without one)."""
    prefix = override[: len(override) - len(override.lstrip("+~"))]
    key, sep, value = override[len(prefix) :].partition("=")
    return prefix, key, value if sep else None


def _short_key(key: str, keys: set[str]) -> str:
    """The shortest dotted tail of `key` that no other key ends with."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        tail = ".".join(parts[i:])
        if not any(k != key and (k == tail or k.endswith("." + tail)) for k in keys):
            return tail
    return key


def _short_value(value: str, others: set[str], long: int = 24) -> str:
    """A long path from the component where it parts from the key's other values."""
    if len(value) <= long or len(others) < 2:
        return value
    cut = os.path.commonprefix(sorted(others)).rfind("/")
    return "…" + value[cut:] if cut > 0 else value


def _line(ax, r: RunRecord, split: str, key: str, label: str) -> None:
    points = [(x["step"], x[key]) for x in r.rows if x["split"] == split and x.get(key) is not None]
    if points:
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, marker="." if len(points) < 30 else None, label=label)


def _finish(ax, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
