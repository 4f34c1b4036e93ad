"""What llmtrain says about its options: `llmtrain --help`, every command's own `--help`, the
option tables of docs/configuration.md, and one-line hints for arguments in a form Hydra does not
take.

A Hydra command's help composes the config as the command would (Hydra's compose API, the user's
overrides included), so the values shown are those the run would use; a command without Hydra
(generate, fill-mask) lists its schema's keys with their defaults. Each key's text is its field's
help in llmtrain.config, never a copy. hydra and omegaconf only: no torch.
"""

from __future__ import annotations

import textwrap
import typing
from dataclasses import MISSING, fields
from enum import Enum
from typing import Any

from llmtrain.commands import COMMANDS, config_dir
from llmtrain.config import GROUPS, FillMaskConfig, GenerateConfig, register_schemas, settle
from llmtrain.errors import ConfigError

WIDTH = 100
_VALUE_WIDTH = 14  # a longer value puts its help on the next line
# Hydra's flags (hydra._internal.utils.get_args_parser) that take a value after them.
_VALUE_FLAGS = {
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
# The switches, and argparse's `--` (end of flags).
_SWITCHES = {
    "--help", "-h", "--hydra-help", "--version", "--resolve", "--run", "-r", "--multirun", "-m",
    "--shell-completion", "-sc", "--",
}  # fmt: skip
# --info takes a value only when one of its choices follows.
_INFO_FLAGS = {"--info", "-i"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
_HYDRA_FLAGS = _VALUE_FLAGS | _SWITCHES | _INFO_FLAGS
_OWN_FLAGS = {"--quiet"}
# The key=value schema of each command that parses its own argv (commands.PLAIN); report
# takes paths.
_PLAIN_SCHEMAS = {"generate": GenerateConfig, "fill-mask": FillMaskConfig}
# report's arguments, which are paths and a flag rather than keys of a schema.
_REPORT_ARGUMENTS = """arguments:
  DIR    a run directory, a sweep (multirun) directory, or any folder with runs beneath it;
         runs in progress are included
  --out  where report.md and the plots go (default: DIR/report, or the DIRs' common parent)
status: finished, diverged (its last evaluation was NaN/inf), running (step N), stopped or
  failed (step N), interrupted (step N): no process holds it and none recorded its end (killed,
  or its machine went down)"""


def command_help(config_name: str, title: str, overrides: list[str]) -> str:
    """`llmtrain TITLE --help` for the command whose config is `config_name`: its config groups
    and options, and each key with the value this command line (`overrides`, flags ignored)
    would run with, and its help."""
    given, _ = _split(overrides)
    sweep = any(_hydra_flag(arg) in ("-m", "--multirun") for arg in overrides)
    if sweep:  # compose takes no sweep: show the values of its first job
        given = _first_job(given)
    register_schemas()
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=given, return_hydra_config=True)
    settle(cfg, given)  # as the job does: a key given wins over its rivals' defaults
    choices = cfg.hydra.runtime.choices
    names = [name for name in cfg if name != "hydra"]
    description = COMMANDS[title.split()[0]].removeprefix(f"{title}: ")
    lines = [
        f"usage: llmtrain {title} [group=option ...] [group.key=value ...] [-m] [--quiet] "
        "[--cfg job]",
        "",
        description,
        "",
        "config groups (group=option; [the one selected]):",
    ]
    lines += [_group_line(name, choices[name]) for name in names if name in choices]
    runs = "this sweep's first job runs" if sweep else "this command line runs"
    lines += ["", f"keys (group.key=value), with the values {runs} with:"]
    for name in names:
        if cfg[name]:  # an unselected optional group (recipe, evaluate's task) has no keys
            picked = f" ({name}={choices[name]})" if name in choices else ""
            lines += ["", f"{name}{picked}:", *_key_lines(cfg, name)]
    lines += ["", "examples:", *_examples(title), ""]
    lines.append("--cfg job prints the whole composed config; --hydra-help is Hydra's own help.")
    return "\n".join(lines)


def plain_help(command: str) -> str:
    """`llmtrain COMMAND --help` for a command without Hydra: its synopsis and description (as
    `llmtrain --help` gives them, commands.COMMANDS) and its arguments: each key of its schema with
    the default and help, or report's paths."""
    synopsis, _, description = COMMANDS[command].partition(": ")
    schema = _PLAIN_SCHEMAS.get(command)
    lines = [f"usage: llmtrain {command} {synopsis}" + (" [key=value ...]" if schema else "")]
    lines += ["", description, ""]
    if schema is None:
        return "\n".join([*lines, _REPORT_ARGUMENTS])
    rows = [(f.name, _shown(_default(f)), f.metadata["help"]) for f in fields(schema)]
    return "\n".join([*lines, "keys (key=value), with their defaults:", *_columns(rows)])


def _default(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def option_tables(kinds: dict[str, type]) -> str:
    """Markdown tables of every group's keys, defaults and help (docs/configuration.md embeds
    this); the task group has one table per task kind (`kinds`: llmtrain.tasks.schemas())."""
    tables = [(f"**`{group}`**", group, schema) for group, schema in GROUPS.items()]
    at = list(GROUPS).index("trainer") + 1
    tables[at:at] = [
        (f"**`task`** (kind `{kind}`)", "task", schema) for kind, schema in kinds.items()
    ]
    out = []
    for heading, group, schema in tables:
        out += [heading, "", "| key | default | meaning |", "|---|---|---|"]
        for f in fields(schema):
            default = _default(f)
            if isinstance(default, Enum):
                default = default.value
            shown = "null" if default is None else str(default).replace("|", "\\|")
            out.append(f"| `{group}.{f.name}` | `{shown}` | {f.metadata['help']} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def check_flags(config_name: str, title: str, args: list[str]) -> None:
    """Raise a ConfigError for the first flag in `args` that is neither Hydra's nor llmtrain's
    (argparse would end in its usage dump), naming the key=value form it was likely meant as."""
    _, unknown = _split(args)
    if not unknown:
        return
    at = unknown[0]
    flag, _, value = args[at].partition("=")
    following = args[at + 1] if at + 1 < len(args) else ""
    if not value and following and not following.startswith("-") and "=" not in following:
        value = following  # `--max_steps 10`
    name = flag.lstrip("-").replace("-", "_")
    keys = _schema_keys(config_name)
    matches = [key for key in keys if name in (key, key.rsplit(".", 1)[-1])]
    if not matches:
        raise ConfigError(
            f"unknown flag {flag}: {name} is no key of llmtrain {title} either "
            f"(llmtrain {title} --help lists them)"
        )
    placeholder = {key: "true" if keys[key] is bool else "..." for key in matches}
    forms = " or ".join(f"{key}={value or placeholder[key]}" for key in matches)
    what = "choose options as group=option" if "." not in matches[0] else "set keys as key=value"
    raise ConfigError(f"unknown flag {flag}: {what}, e.g. {forms}")


def several_values(override: str, title: str) -> str:
    """The line for `key=a,b` given without -m, which Hydra finds ambiguous: the forms meant."""
    key, _, value = override.partition("=")
    line = (
        f"{override} is several values: to sweep over them add -m (llmtrain {title} -m {override})"
    )
    kind = _key_type(key.lstrip("+~"))
    if kind is list or kind is None:  # None: a key of no schema; Hydra's general advice
        line += f"; for a list write {key}=[{value}]"
    elif kind is str:
        line += f"; for one string quote it: \"{key}='{value}'\""
    return line


def _split(args: list[str]) -> tuple[list[str], list[int]]:
    """Hydra's overrides among `args`, and the positions of flags Hydra and llmtrain lack."""
    overrides: list[str] = []
    unknown: list[int] = []
    value_of = ""  # the flag whose value may come next
    for i, arg in enumerate(args):
        if value_of in _VALUE_FLAGS or (value_of in _INFO_FLAGS and arg in _INFO_CHOICES):
            value_of = ""
            continue
        flag, has_value, _ = arg.partition("=")
        value_of = ""
        if not arg.startswith("-"):
            overrides.append(arg)
        elif (known := _hydra_flag(flag)) or flag in _OWN_FLAGS:
            value_of = "" if has_value else known
        else:
            unknown.append(i)
    return overrides, unknown


def _first_job(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job: the first value of each swept key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return [
        f"{o.get_key_element()}={next(o.sweep_string_iterator())}"
        if o.is_sweep_override()
        else o.input_line
        for o in OverridesParser.create().parse_overrides(overrides)
    ]


def _hydra_flag(flag: str) -> str:
    """The Hydra flag `flag` names, or ''. argparse takes a prefix of a long flag as the flag."""
    if flag in _HYDRA_FLAGS:
        return flag
    if flag.startswith("--"):
        return next((f for f in sorted(_HYDRA_FLAGS) if f.startswith(flag)), "")
    return ""


def _schema_keys(config_name: str) -> dict[str, Any]:
    """Every group and group.key of the command's schema, with its type."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    register_schemas()
    schema = OmegaConf.get_type(ConfigStore.instance().load(f"{config_name}_schema.yaml").node)
    keys: dict[str, Any] = {}
    for group, kind in typing.get_type_hints(schema).items():
        keys[group] = dict if group == "task" else _unwrap(kind)
        for key, key_type in _hints(group, _unwrap(kind)).items():
            keys[f"{group}.{key}"] = _unwrap(key_type)
    return keys


def _hints(group: str, schema: Any) -> dict[str, Any]:
    """A group's keys and their types; the task group's are those of every task kind."""
    if group != "task":
        return typing.get_type_hints(schema) if schema in GROUPS.values() else {}
    from llmtrain.tasks import schemas

    hints: dict[str, Any] = {}
    for kind_schema in schemas().values():
        hints.update(typing.get_type_hints(kind_schema))
    return hints


def _unwrap(kind: Any) -> Any:
    """`X | None` → X; list[str] → list; anything else as it is."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (list, dict):
        return typing.get_origin(kind)
    return _unwrap(args[0]) if args else kind


def _key_type(key: str) -> Any:
    """The type of a group.key of any command (`list`, `str`, …), `dict` for a group, or None."""
    if "." not in key:
        return dict if (config_dir() / key).is_dir() else None
    group, _, name = key.partition(".")
    hints = _hints(group, GROUPS.get(group))
    return _unwrap(hints[name]) if name in hints else None


def _group_line(group: str, selected: str | None) -> str:
    options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
    shown = ", ".join(f"[{o}]" if o == selected else o for o in options)
    if selected is None:
        shown += " (none\u00a0selected)"  # kept on one line by the wrapping
    lines = _wrap(shown, f"  {group:<13}", " " * 15)
    return "\n".join(lines).replace("\u00a0", " ")


def _key_lines(cfg: Any, group: str) -> list[str]:
    """The group's keys, values and help in aligned columns; help wraps under its column."""
    from omegaconf import OmegaConf

    node = cfg[group]
    if group == "task":  # typed by its kind's schema, with the defaults its file leaves out
        from llmtrain.tasks import complete

        node = complete(node)
    try:
        values = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    except Exception:  # an interpolation only a running job can resolve: show it as written
        values = OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    helps = {f.name: f.metadata["help"] for f in fields(OmegaConf.get_type(node))}
    return _columns(
        [(f"{group}.{key}", _shown(value), helps[key]) for key, value in values.items()]
    )


def _columns(rows: list[tuple[str, str, str]]) -> list[str]:
    """(key, value, help) rows in aligned columns; help wraps under its column, and a value too
    long for its column puts the help on the next line."""
    key_width = max(len(key) for key, _, _ in rows)
    value_width = max((len(v) for _, v, _ in rows if len(v) <= _VALUE_WIDTH), default=0)
    indent = " " * (2 + key_width + 2 + value_width + 2)
    lines = []
    for key, value, text in rows:
        head = f"  {key:<{key_width}}  {value:<{value_width}}  "
        if len(head) > len(indent):
            lines.append(head.rstrip())
            head = indent
        lines += _wrap(text, head, indent) or [head.rstrip()]
    return lines


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """`text` in lines of WIDTH after `first` and `rest`; names like gpt2-124m stay whole."""
    return textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


def _shown(value: Any) -> str:
    """A value as it is written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return str(value) if value != "" else "''"


def _examples(title: str) -> list[str]:
    """The examples of `llmtrain --help` that are for this command."""
    examples = usage().split("\nexamples:\n", 1)[1].splitlines()
    return [line for line in examples if line.split()[1 : 1 + len(title.split())] == title.split()]


def usage() -> str:
    """`llmtrain --help`: the commands, the config groups (the schema's), and examples."""
    from llmtrain.config import GROUPS  # the schema, without torch

    lines = [
        "usage: llmtrain COMMAND [key=value ...] [-m] [--quiet] [--cfg job] [--help]",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    groups = (
        f"groups: {', '.join(GROUPS)}; pick one with group=option, set any key with "
        "group.key=value; `llmtrain COMMAND --help` lists the options. --quiet: only warnings "
        "and the summary."
    )
    lines += [
        "",
        f"configs: {config_dir()}",
        *textwrap.wrap(
            groups, 94, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
        ),
        "",
        "examples:",
        "  llmtrain pretrain objective=mlm",
        "  llmtrain pretrain objective=clm model=gpt2-tiny",
        "  llmtrain pretrain data=text_files data.train_files=[a.txt,b.txt] trainer.max_steps=2000",
        "  llmtrain pretrain -m trainer.lr=1e-3,3e-4",
        "  llmtrain pretrain --cfg job",
        "  llmtrain finetune task=sst2 task.data_dir=glue/SST-2 model.from_run=outputs/pretrain/…",
        "  llmtrain evaluate task=sst2 task.data_dir=glue/SST-2 model.from_run=outputs/finetune/…",
        "  llmtrain finetune task=sft task.train_file=qa.jsonl model.from_run=outputs/pretrain/…",
        "  llmtrain pretrain logger.trackers=[tensorboard,mlflow]",
        "  llmtrain report multirun/pretrain/2026-11-26/12-00-00",
        '  llmtrain generate outputs/pretrain/… prompt="def main" temperature=0.7',
        '  llmtrain fill-mask outputs/pretrain/… text="return the [MASK] of the list"',
        "  llmtrain tokenizer train data=text_files data.train_files=[a.txt] "
        "tokenizer.vocab_size=4096",
        "  llmtrain glue glue.tasks=[cola,sst2,rte] glue.data_dir=glue_data model.from_run=…",
        "  llmtrain pretrain recipe=bert-tiny-stdlib",
    ]
    return "\n".join(lines)
