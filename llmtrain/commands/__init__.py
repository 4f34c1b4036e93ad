"""One module per command: each wires the components together and reads top to bottom; this
module is their table (COMMANDS, and where the config tree is), dispatches to them, and parses
the argv of the commands without Hydra (what every training command shares is llmtrain.session).

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

COMMANDS = {
    "pretrain": "train a BERT (objective=mlm) or GPT-2 (objective=clm) on raw text",
    "prepare": "the token shards pretrain reads, prepared on their own (data=…, all cores)",
    "finetune": "fine-tune a model on a GLUE task or a local labelled file (task=…)",
    "evaluate": "a model's task metrics and predictions (task=…) or perplexity (data=…)",
    "tokenizer": "tokenizer train: train and save the tokenizer pretrain would train (data=…)",
    "report": "DIR… [--out OUT]: a table of runs by main metric, and plots of their curves",
    "generate": 'RUN_DIR prompt="…": continue a prompt with a CLM run\'s model',
    "fill-mask": 'RUN_DIR text="… [MASK] …": an MLM run\'s guesses for the masked words',
    "glue": "fine-tune one model on each GLUE task in turn; one table (glue.md, glue.json)",
}
# Commands that parse their own argv (no Hydra, no run directory), and the module of each.
PLAIN = {"report": "report", "generate": "generate", "fill-mask": "fill_mask"}
# Commands of two words: the module and config of each second word.
SUBCOMMANDS = {"tokenizer": {"train": "tokenizer_train"}}


def config_dir() -> Path:
    """The config tree: inside the installed package (wheel), or at the repo root (editable)."""
    here = Path(__file__).resolve().parent.parent  # the package
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "pretrain.yaml").is_file():
            return candidate
    raise RuntimeError(
        f"llmtrain's config tree is missing (looked in {here}/configs and {here.parent}/configs)"
    )


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
