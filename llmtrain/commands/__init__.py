"""One module per command: each wires the components together and reads top to bottom; this
module dispatches to them and parses the argv of the commands without Hydra (what every
training command shares is llmtrain.session).

A Hydra command is `run(cfg, run_dir, resolved, overrides)`: its config schema, the run
directory Hydra chose, the resolved config (saved with checkpoints) and the command-line
overrides in effect (shown in the header). Commands without a run directory (report, generate,
fill-mask) are `main(argv)`. Commands never import each other: one that runs another (glue runs
finetune per task) goes through `run_command`, as the CLI does.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from llmtrain.errors import ConfigError


def run_command(
    name: str, cfg: Any, run_dir: Path, resolved: dict[str, Any], overrides: list[str]
) -> Any:
    """Run the Hydra command `name` (the module llmtrain.commands.<name>) on its composed config:
    the one dispatch path, for the CLI's job and for a command that runs another. Imported by
    name, so a command's dependencies (torch, datasets) load only when it runs."""
    return importlib.import_module(f"llmtrain.commands.{name}").run(
        cfg, run_dir, resolved, overrides
    )


def parse_plain(argv: list[str], schema: type) -> tuple[list[str], Any]:
    """`PATH… key=value…` for a command without Hydra, checked against the dataclass `schema`
    as Hydra would (a misspelt key or a wrong type is an error). Values are taken as typed (a
    prompt is never parsed as YAML). Its --help is the CLI's (llmtrain.help.plain_help)."""
    from omegaconf import OmegaConf

    paths = [a for a in argv if "=" not in a]
    pairs = dict(a.split("=", 1) for a in argv if "=" in a)
    known = list(schema.__dataclass_fields__)
    for key in pairs:
        if key not in known:
            raise ConfigError(f"unknown option '{key}' (options: {', '.join(known)})")
    cfg = OmegaConf.merge(OmegaConf.structured(schema), pairs)
    return paths, OmegaConf.to_object(cfg)


def one_run_dir(paths: list[str], command: str) -> str:
    if len(paths) != 1:
        raise ConfigError(f"give one run directory: llmtrain {command} RUN_DIR key=value …")
    return paths[0]
