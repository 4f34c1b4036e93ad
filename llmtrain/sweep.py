"""The end of a sweep (Hydra multirun): `llmtrain report`'s table of every job (its overrides and
main metric, best first), printed and written to <sweep>/sweep.md. Hooked in as a Hydra
callback (configs/run_dirs.yaml); `llmtrain report <sweep>` adds the plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from llmtrain.atomic import atomic_write_text
from llmtrain.comparison import find_runs, markdown


class SweepTable(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if int(os.environ.get("RANK", "0")) > 0:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir() or not any(sweep_dir.glob("*/.hydra")):
            return
        table = markdown(find_runs([str(sweep_dir)]))
        atomic_write_text(sweep_dir / "sweep.md", table)
        print(f"\nsweep {sweep_dir}:\n{table}(plots: llmtrain report {sweep_dir})", flush=True)
