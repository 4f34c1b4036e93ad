"""What a run shows: a rich progress bar and tables on a terminal, plain lines otherwise.

A run shows a header (what runs where, on what), progress and evaluations as they arrive, and a
summary; warnings — ours and the libraries' Python warnings — go through `warn`, print once
each, and are repeated together under the summary. `logger.console=quiet` keeps only the
warnings and the summary. Every line, quiet or not, also goes to the run's log file, as plain
text. User values are printed literally (no rich markup: `[a.txt]` stays). Only the main
process prints; elsewhere every method does nothing.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from llmtrain.config import ConsoleMode


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4g}"


def _plain(title: str, rows: dict[str, Any]) -> str:
    """A table as plain lines: the title, then `  key  value` aligned."""
    width = max((len(k) for k in rows), default=0)
    return "\n".join([title, *(f"  {k:<{width}}  {_fmt(v)}" for k, v in rows.items())])


def quiet_libraries() -> None:
    """The run's own console reports progress; the libraries' bars and chatter would bury it."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


class Console:
    def __init__(
        self, enabled: bool = True, mode: ConsoleMode = ConsoleMode.auto, log: Path | None = None
    ) -> None:
        quiet_libraries()
        self.enabled = enabled
        # line-buffered: the log can be read while the run goes on, and a killed run's is whole
        self._log: IO[str] | None = (
            open(log, "a", encoding="utf-8", buffering=1) if enabled and log else None
        )
        self.quiet = mode is ConsoleMode.quiet
        self.rich = RichConsole(highlight=False)
        self.live = enabled and mode is ConsoleMode.auto and self.rich.is_terminal
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self._progress: Progress | None = None
        self._task = None
        if enabled:  # the libraries' Python warnings join ours, once each
            warnings.showwarning = lambda message, category, *_a, **_k: self.warn(
                f"{category.__name__}: {message}"
            )

    def elapsed(self) -> float:
        """Seconds since the console (the command) started: the run's wall time."""
        return time.perf_counter() - self.started

    def _write_log(self, text: str) -> None:
        if self._log is not None:
            self._log.write(text + "\n")

    def _print(self, text: str) -> None:
        if not self.enabled:
            return
        self._write_log(text)
        if self._progress is not None:  # above the bar
            self._progress.console.print(text, markup=False)
        elif self.live:
            self.rich.print(text, markup=False)
        else:  # logs and CI: one unwrapped line per message
            print(text, flush=True)

    def line(self, text: str) -> None:
        """A progress note (not shown when quiet; logged all the same)."""
        if not self.quiet:
            self._print(text)
        elif self.enabled:
            self._write_log(text)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)
            self._print(f"warning: {text}")

    def table(self, title: str, rows: dict[str, Any]) -> None:
        """Keys and values: a rich table on a terminal, `  key  value` lines otherwise."""
        if not self.enabled:
            return
        plain = _plain(title, rows)
        if not self.live:
            self._print(plain)
            return
        self._write_log(plain)
        table = Table(title=Text(title), show_header=False, title_justify="left", box=None)
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows.items():
            table.add_row(Text(key), Text(_fmt(value)))  # Text: values are never markup
        self.rich.print(table)

    def header(self, title: str, rows: dict[str, Any]) -> None:
        """What is about to run: command, run directory, device, model, data, batch, steps."""
        if not self.quiet:
            self.table(title, rows)
        elif self.enabled:
            self._write_log(_plain(title, rows))

    def summary(self, title: str, rows: dict[str, Any], *footer: str) -> None:
        """The end of a command (shown even when quiet): its results, where they are, and
        every warning of the run again."""
        self.table(title, rows)
        for text in footer:
            self._print(text)
        if self.warnings:
            self._print(f"{len(self.warnings)} warning(s) during the run:")
            for text in self.warnings:
                self._print(f"  {text}")

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
            if row:
                self._write_log(f"step {step}: {info}")
        elif row:
            self.line(f"step {step}: {info}")

    def eval(self, step: int, row: dict[str, Any]) -> None:
        self.line(f"eval @ step {step}: " + " ".join(f"{k} {_fmt(v)}" for k, v in row.items()))

    def preparing(self) -> Callable[[int, int, int], None]:
        """A progress callback for data preparation, (characters read, input bytes, tokens): a
        bar with MB/s, tokens/s and the time left on a terminal, else a line every 10 s."""
        t0, shown = time.perf_counter(), [0.0]

        def update(done: int, total: int, tokens: int) -> None:
            seconds = max(time.perf_counter() - t0, 1e-9)
            if not self.enabled or self.quiet or done == 0:
                return
            info = f"{done / 1e6 / seconds:.1f} MB/s, {tokens / seconds:,.0f} tokens/s"
            if self.live:
                if self._progress is None:
                    self._progress = Progress(
                        TextColumn("preparing"),
                        BarColumn(),
                        TextColumn("{task.fields[info]}"),
                        TimeRemainingColumn(),
                        console=self.rich,
                    )
                    self._task = self._progress.add_task("prepare", total=total, info="")
                    self._progress.start()
                self._progress.update(self._task, completed=min(done, total), info=info)
            elif seconds - shown[0] >= 10:
                shown[0] = seconds
                left = max(total - done, 0) / (done / seconds)
                self.line(
                    f"preparing: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB, {info}, "
                    f"about {left:,.0f} s left"
                )

        return update

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
