"""`llmtrain COMMAND --help`: the command's own keys, with the values it would run with."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import key_line, run_cli


@pytest.mark.parametrize(
    ("args", "lr", "selected"),
    [
        (["pretrain", "--help"], "0.0005", "[bert-tiny]"),
        (["finetune", "-h"], "0.0001", "[sst2]"),
        (["finetune", "task=ner", "--help"], "0.0001", "[ner]"),
    ],
)
def test_help_shows_the_commands_own_values(args, lr, selected, cache_dir):
    result = run_cli(args, cache_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"usage: llmtrain {args[0]} ")
    assert "== Config ==" not in out and "powered by Hydra" not in out
    assert key_line(out, "trainer.lr").split()[1:] == [lr, "peak", "learning", "rate"]
    assert selected in out
    assert all(len(line) <= 100 for line in out.splitlines())
    # each group's keys (a section between blank lines) fit on a screen
    assert max(len(section.splitlines()) for section in out.split("\n\n")) < 60


def test_help_lists_groups_and_examples_of_its_command(cache_dir):
    out = run_cli(["pretrain", "--help"], cache_dir).stdout
    section = out.split("config groups")[1].split("\n\n")[0].splitlines()[1:]
    groups = [line.split()[0] for line in section if not line.startswith("   ")]
    assert groups == "data tokenizer model objective trainer distributed logger recipe".split()
    assert "[trained]" in key_line(out, "tokenizer") and "(none selected)" in out
    assert "llmtrain pretrain -m trainer.lr=1e-3,3e-4" in out
    assert "llmtrain finetune" not in out and "task.name" not in out


def test_help_values_are_those_the_run_would_use(cache_dir):
    """finetune's trainer.epochs=3 gives way to a max_steps given, as at run time."""
    default = run_cli(["finetune", "--help"], cache_dir).stdout
    assert key_line(default, "trainer.epochs").split()[1] == "3.0"
    given = run_cli(["finetune", "trainer.max_steps=10", "--help"], cache_dir).stdout
    assert key_line(given, "trainer.max_steps").split()[1] == "10"
    assert key_line(given, "trainer.epochs").split()[1] == "null"


@pytest.mark.parametrize("command", [["evaluate"], ["glue"], ["tokenizer", "train"]])
def test_every_hydra_command_has_its_help(command, cache_dir):
    result = run_cli([*command, "--help"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: llmtrain {' '.join(command)} ")
    assert "logger.console" in result.stdout


def test_help_with_a_bad_key_fails_in_one_line(cache_dir):
    result = run_cli(["pretrain", "trainer.lrr=1", "--help"], cache_dir)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "trainer.lrr" in result.stderr


def test_hydra_help_stays_hydras(cache_dir):
    result = run_cli(["pretrain", "--hydra-help"], cache_dir)
    assert result.returncode == 0 and "== Flags ==" in result.stdout


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--help"], "configs:"),
        (["finetune", "--help"], "trainer.lr"),
        (["generate", "--help"], "max_new_tokens"),
    ],
)
def test_help_does_not_import_torch(argv, shown):
    code = (
        "import sys\nfrom llmtrain.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown in out and out.strip().endswith("False")


def test_help_of_a_sweep_shows_its_first_job(cache_dir):
    result = run_cli(["pretrain", "-m", "trainer.lr=1e-3,3e-4", "--help"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert key_line(result.stdout, "trainer.lr").split()[1] == "0.001"
