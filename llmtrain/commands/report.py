"""`llmtrain report DIR…`: the runs at or beneath each directory (a run, a sweep, a folder of
runs) in one table sorted by main metric, written with plots of their curves to
<DIR>/report/ (several DIRs: their common parent's report/; or --out DIR)."""

from __future__ import annotations

import os
from pathlib import Path

from llmtrain.atomic import atomic_dir
from llmtrain.comparison import find_runs, markdown, plot
from llmtrain.errors import ConfigError


def main(argv: list[str]) -> None:
    args, out = list(argv), None
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            raise ConfigError("--out needs a directory")
        out = Path(args.pop(i + 1))
        args.pop(i)
    runs = find_runs(args)
    if out is None:
        given = [Path(a).expanduser().resolve() for a in args]
        out = (given[0] if len(given) == 1 else Path(os.path.commonpath(given))) / "report"
    table = markdown(runs)
    with atomic_dir(out) as tmp:
        (tmp / "report.md").write_text(table, encoding="utf-8")
        names = [p.name for p in plot(runs, tmp)]
    print(table, end="", flush=True)
    print(f"\nreport: {out}/ ({', '.join(['report.md', *names])})", flush=True)
