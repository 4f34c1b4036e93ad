"""What a run shows: a rich progress bar and tables on a terminal, plain lines otherwise.

Only the main process prints; elsewhere every method does nothing.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4g}"


def quiet_libraries() -> None:
    """The run's own console reports progress; the libraries' bars and chatter would bury it."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


class Console:
    def __init__(self, enabled: bool = True) -> None:
        quiet_libraries()
        self.enabled = enabled
        self.rich = RichConsole(highlight=False)
        self.live = enabled and self.rich.is_terminal
        self._progress: Progress | None = None
        self._task = None

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.live:
            self.rich.print(text, markup=False)
        else:  # logs and CI: one unwrapped line per message
            print(text, flush=True)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}")

    def table(self, title: str, rows: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if not self.live:
            self.line(f"{title}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in rows.items()))
            return
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows.items():
            table.add_row(key, _fmt(value))
        self.rich.print(table)

    def start(self, total_steps: int, done: int = 0) -> None:
        if self.live:
            self._progress = Progress(
                TextColumn("step"),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.rich,
            )
            self._task = self._progress.add_task(
                "train", total=total_steps, completed=done, info=""
            )
            self._progress.start()

    def step(self, step: int, row: dict[str, Any] | None = None, total: int | None = None) -> None:
        """Advance the bar (to a new `total` if the run re-planned); with a row of train metrics
        also show them (plain: print them)."""
        if not self.enabled:
            return
        info = " ".join(f"{k} {_fmt(v)}" for k, v in (row or {}).items())
        if self._progress is not None:
            fields = {"info": info} if row else {}
            self._progress.update(self._task, completed=step, total=total, **fields)
        elif row:
            self.line(f"step {step}: {info}")

    def eval(self, step: int, row: dict[str, Any]) -> None:
        text = f"eval @ step {step}: " + " ".join(f"{k} {_fmt(v)}" for k, v in row.items())
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            self.line(text)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
