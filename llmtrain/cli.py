"""argv → command word → Hydra → `llmtrain.commands.<command>.run(cfg, run_dir, resolved,
overrides)`; commands without a run directory (report, generate, fill-mask) get their own argv:
`llmtrain.commands.<command>.main(argv)`.

The only module that touches Hydra's decorator, the process's exit code and error lines. Hydra
has no subcommands, so the command word is popped from argv before Hydra parses the rest
(`-m` sweeps included). User mistakes (bad keys, values, files, data) end as one line on stderr
and exit code 2. `llmtrain --help` answers without importing torch.
"""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmtrain.commands import COMMANDS, PLAIN, SUBCOMMANDS, config_dir

EXIT_USER_ERROR = 2
_WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        from llmtrain.help import usage  # hydra and the schema, no torch

        print(usage())
        sys.exit(0 if args else EXIT_USER_ERROR)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        _fail(f"unknown command '{command}' (commands: {', '.join(COMMANDS)})")
    if command in PLAIN:
        _run_plain(command, rest)
        return
    module, title = command, command
    if command in SUBCOMMANDS:
        words = SUBCOMMANDS[command]
        if not rest or rest[0] not in words:
            _fail(f"give a word after '{command}': {', '.join(words)}", command)
        module, title, rest = words[rest[0]], f"{command} {rest[0]}", rest[1:]
    if "--quiet" in rest:  # a console setting like any other, after the user's arguments
        rest = [a for a in rest if a != "--quiet"] + ["logger.console=quiet"]
    # With HYDRA_FULL_ERROR set, Hydra raises instead of printing a multi-line report and
    # exiting; we turn the exception into one line. A user who set it gets the traceback.
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    scratch = None
    if int(os.environ.get("RANK", "0")) > 0:
        # Ranks > 0 of a multi-process launch write nothing: their run directory is rank 0's,
        # received once the processes have joined. Added after the user's arguments.
        scratch = tempfile.mkdtemp(prefix="llmtrain-rank-")
        mine = ("hydra.run.dir=", "hydra.sweep.dir=")
        rest = [a for a in rest if not a.startswith(mine)] + [
            f"hydra.run.dir={scratch}",
            f"hydra.sweep.dir={scratch}",
            "hydra/hydra_logging=none",
        ]
    sys.argv = [f"llmtrain-{command}", *rest]
    try:
        from llmtrain.help import check_flags, command_help  # hydra and the schema, no torch

        check_flags(module, title, rest)  # `--max_steps 10`: before argparse's usage dump
        if "-h" in rest or "--help" in rest:  # the command's own help, not Hydra's defaults
            print(command_help(module, title, rest))
            return
        failures = _run_hydra(module, wants_traceback)
    except Exception as e:
        message = _user_error(e, title)
        if message is None or wants_traceback:
            raise
        failures = [(message, getattr(e, "exit_code", EXIT_USER_ERROR))]
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    _end(command, failures)


def _end(command: str, failures: list[tuple[str, int]]) -> None:
    """Each job's user error once (a sweep repeats the same mistake per job), and the exit code:
    the first failure's; 0 when each was a note that nothing needed doing."""
    for message, code in dict.fromkeys(failures):
        if code == 0:  # nothing wrong, nothing done (e.g. the run was already complete)
            print(f"llmtrain {command}: {message}", flush=True)
        else:
            print(f"llmtrain {command}: error: {message}", file=sys.stderr)
    codes = [code for _, code in failures if code != 0]
    if codes:
        sys.exit(codes[0])


def _run_plain(command: str, argv: list[str]) -> None:
    """A command without Hydra or a run directory: its module parses `argv` itself; its --help
    comes from its schema, before the module (and torch) is imported."""
    if "--help" in argv or "-h" in argv:
        from llmtrain.help import plain_help

        print(plain_help(command))
        return
    try:
        importlib.import_module(f"llmtrain.commands.{PLAIN[command]}").main(argv)
    except Exception as e:
        message = _user_error(e)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(message, command, getattr(e, "exit_code", EXIT_USER_ERROR))


def _run_hydra(command: str, wants_traceback: bool) -> list[tuple[str, int]]:
    """Run the command (its module and config name) through Hydra; returns the user errors its
    jobs ended with, and their exit codes."""
    import hydra

    from llmtrain.config import register_schemas

    register_schemas()

    failures: list[tuple[str, int]] = []
    bugs: list[BaseException] = []  # a job's own errors, which keep their traceback

    def task(cfg: Any) -> Any:
        try:
            return _job(command, cfg)
        except KeyboardInterrupt:
            failures.append(("interrupted (SIGINT)", 130))
        except Exception as e:
            # Caught here: a job that raises makes Hydra print a report of its own first.
            message = _user_error(e)
            if message is None or wants_traceback:
                bugs.append(e)
                raise
            failures.append((message, getattr(e, "exit_code", EXIT_USER_ERROR)))

    try:
        hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=command)(task)()
    except OSError as e:  # Hydra's own work around a job: creating the run or sweep directory
        if e.filename is None or any(e is bug for bug in bugs):
            raise
        raise _directory_error(e) from e
    return failures


def _job(command: str, cfg: Any) -> Any:
    """One Hydra job: the run directory held (rank 0), its .hydra/ written, the command run."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from llmtrain.commands import run_command
    from llmtrain.config import settle
    from llmtrain.new_dirs import created_for
    from llmtrain.rundir import claimed
    from llmtrain.tasks import typed

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)  # this job's, a sweep's included
    settle(cfg, overrides)
    schema = typed(cfg)  # typed dataclasses (the task's by its kind); fails on a missing value
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if int(os.environ.get("RANK", "0")) > 0:  # rank 0 holds the directory for the launch
        return run_command(command, schema, run_dir, resolved, overrides)
    with claimed(run_dir, created_for(run_dir)):
        saved = run_dir / ".hydra"
        saved.mkdir(exist_ok=True)
        OmegaConf.save(cfg, saved / "config.yaml")
        OmegaConf.save(HydraConfig.instance().cfg, saved / "hydra.yaml")
        OmegaConf.save(hydra_cfg.overrides.task, saved / "overrides.yaml")
        return run_command(command, schema, run_dir, resolved, overrides)


def _directory_error(e: OSError) -> Exception:
    """A run directory that cannot be made, in one line: which path, and why."""
    from llmtrain.errors import ConfigError

    path = Path(e.filename)
    blocking = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    why = f"{blocking} is a file, not a directory" if blocking else e.strerror
    return ConfigError(f"cannot create the run directory: {path}: {why}")


def _user_error(e: BaseException, command: str = "COMMAND") -> str | None:
    """One line for a mistake the user can fix; None for a bug (which keeps its traceback).
    `command` (e.g. `tokenizer train`) is for the lines that show a corrected command line."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from llmtrain.errors import LlmtrainError

    if isinstance(e, LlmtrainError):
        return str(e)
    if isinstance(e, ValueError) and str(e).startswith("Only one of --run"):
        return str(e)  # Hydra's own check of its flags (e.g. -m with --cfg)
    if isinstance(e, OSError) and e.filename and e.errno in _WRITE_ERRORS:
        return f"cannot write {e.filename}: {e.strerror}"
    if isinstance(e, MissingMandatoryValue):
        return f"missing value for {e.full_key}: set it, e.g. {e.full_key}=..."
    if isinstance(e, MissingConfigException):
        # "In 'pretrain': Could not find 'model/x'\n\nAvailable options in 'model':\n\ta\n\tb\n…"
        lines = str(e).splitlines()
        found = lines[0].split(": ", 1)[-1]
        heading = next((ln for ln in lines if ln.startswith("Available options")), None)
        if heading is None:
            return found
        start = lines.index(heading) + 1
        options = []
        for line in lines[start:]:
            if not line.startswith("\t"):
                break
            options.append(line.strip())
        return f"{found} ({heading.rstrip(':').lower()}: {', '.join(options)})"
    ambiguous = "Ambiguous value for argument '"  # key=a,b without -m
    if isinstance(e, HydraException) and str(e).startswith(ambiguous):
        from llmtrain.help import several_values

        return several_values(str(e).splitlines()[0][len(ambiguous) : -1], command)
    if isinstance(e, HydraException | OmegaConfBaseException):
        parts = [str(e).splitlines()[0].strip()]
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException):
            parts.append(getattr(cause, "msg", str(cause)).splitlines()[0].strip())
        return " ".join(p for p in parts if p)
    return None


def _fail(message: str, command: str | None = None, code: int = EXIT_USER_ERROR) -> None:
    prefix = f"llmtrain {command}" if command else "llmtrain"
    print(f"{prefix}: error: {message}", file=sys.stderr)
    sys.exit(code)
