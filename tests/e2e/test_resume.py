"""Runs that survive faults: kill -9 anywhere then resume gives the uninterrupted run's losses and
weights; SIGTERM checkpoints; damaged checkpoints are skipped; changed settings are refused;
an unwritable output directory; one writer per run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FT_TINY, TINY, cli_env, run_cli
from glue_fixtures import write_glue
from safetensors.torch import load_file

SHORT = [
    a
    for a in TINY
    if not a.startswith(
        ("trainer.max_steps", "trainer.log_every", "trainer.eval_every", "trainer.save_every")
    )
]
RUNS = {
    "mlm": ["pretrain", "objective=mlm", *SHORT, "trainer.grad_accum=2"],
    "clm": ["pretrain", "objective=clm", "model=gpt2-tiny", *SHORT],
}
STEPS = [
    "trainer.max_steps=20",
    "trainer.log_every=1",
    "trainer.eval_every=5",
    "trainer.save_every=5",
    "trainer.keep_last=3",
]
FT = [*FT_TINY, "trainer.batch_size=4"]


def _train_rows(run: Path) -> list[dict]:
    if not (run / "metrics.jsonl").exists():
        return []
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _start(args: list[str], run: Path, cache: Path, prelude: str = "") -> subprocess.Popen:
    """The CLI in a child process; `prelude` runs first in it (to inject a fault)."""
    code = f"{prelude}\nfrom llmtrain.cli import main\nmain({[*args, f'hydra.run.dir={run}']!r})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=cli_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt_after(
    args, run, cache, step: int, sig=signal.SIGKILL
) -> subprocess.CompletedProcess:
    """Start a run and send `sig` once metrics.jsonl shows a train row at `step` or later."""
    proc = _start(args, run, cache)
    while proc.poll() is None:
        if any(r["split"] == "train" and r["step"] >= step for r in _train_rows(run)):
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _comparable(run: Path) -> list[tuple]:
    """Every logged value that must not depend on interruptions (timings excluded)."""
    skip = {"tokens_per_s"}
    return [tuple(sorted((k, v) for k, v in r.items() if k not in skip)) for r in _train_rows(run)]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = (
        load_file(a / "final" / "model.safetensors"),
        load_file(b / "final" / "model.safetensors"),
    )
    return wa.keys() == wb.keys() and all(wa[k].equal(wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """The uninterrupted runs, made once."""
    runs = {}
    for name, args in RUNS.items():
        run = tmp_path_factory.mktemp(f"ref-{name}") / "run"
        result = run_cli([*args, *STEPS, f"hydra.run.dir={run}"], cache_dir)
        assert result.returncode == 0, result.stderr
        runs[name] = run
    return runs


@pytest.mark.parametrize(("name", "kill_at"), [("mlm", 3), ("mlm", 12), ("clm", 17)])
def test_kill_9_then_resume_is_exact(reference, cache_dir, tmp_path, name, kill_at):
    run = tmp_path / "run"
    killed = _interrupt_after([*RUNS[name], *STEPS], run, cache_dir, kill_at)
    assert killed.returncode == -signal.SIGKILL
    resumed = run_cli([*RUNS[name], *STEPS, f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    if kill_at >= 5:
        assert "resuming from" in resumed.stdout
    assert _comparable(run) == _comparable(reference[name])
    assert _same_weights(run, reference[name])


def test_kill_while_writing_a_checkpoint(reference, cache_dir, tmp_path):
    run = tmp_path / "run"
    # Die inside the write of checkpoint step-15, after its files are written, before the rename.
    prelude = (
        "import os, signal, llmtrain.atomic as a\n"
        "real = a._fsync_tree\n"
        "def dying(path):\n"
        "    real(path)\n"
        "    if '.step-15.tmp' in str(path): os.kill(os.getpid(), signal.SIGKILL)\n"
        "a._fsync_tree = dying"
    )
    proc = _start([*RUNS["mlm"], *STEPS], run, cache_dir, prelude)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert list((run / "checkpoints").glob(".step-15.tmp-*"))  # the half-written one is there
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-10", "step-5"]
    resumed = run_cli([*RUNS["mlm"], *STEPS, f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and "step-10" in resumed.stdout
    assert not list((run / "checkpoints").glob(".step-*"))
    assert _comparable(run) == _comparable(reference["mlm"]) and _same_weights(
        run, reference["mlm"]
    )


def test_sigterm_checkpoints_and_says_how_to_continue(reference, cache_dir, tmp_path):
    run = tmp_path / "run"
    stopped = _interrupt_after([*RUNS["clm"], *STEPS], run, cache_dir, 7, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM
    line = stopped.stderr.strip().splitlines()
    assert (
        len(line) == 1
        and "stopped by SIGTERM at step" in line[0]
        and f"hydra.run.dir={run}" in line[0]
    )
    step = int(line[0].split("at step ")[1].split(";")[0])
    assert (
        step not in (10, 15, 20) and (run / "checkpoints" / f"step-{step}" / "COMPLETE").is_file()
    )
    resumed = run_cli([*RUNS["clm"], *STEPS, f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0 and f"step-{step}" in resumed.stdout
    assert _comparable(run) == _comparable(reference["clm"]) and _same_weights(
        run, reference["clm"]
    )


def test_damaged_checkpoint_is_skipped_by_auto_and_refused_by_name(reference, cache_dir, tmp_path):
    run = tmp_path / "run"
    killed = _interrupt_after([*RUNS["mlm"], *STEPS], run, cache_dir, 12)
    assert killed.returncode == -signal.SIGKILL
    weights = run / "checkpoints" / "step-10" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a truncated file
    named = run_cli(
        [*RUNS["mlm"], *STEPS, f"trainer.resume={weights.parent}", f"hydra.run.dir={run}"],
        cache_dir,
    )
    assert named.returncode == 2
    assert named.stderr.strip().endswith("the checkpoint is model.safetensors is damaged")
    resumed = run_cli([*RUNS["mlm"], *STEPS, f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "warning: skipping checkpoint" in resumed.stdout and "step-5 (step 5)" in resumed.stdout
    assert _comparable(run) == _comparable(reference["mlm"]) and _same_weights(
        run, reference["mlm"]
    )


def test_changed_settings_and_fresh_starts_are_guarded(reference, cache_dir, tmp_path):
    run = tmp_path / "run"
    args = [*RUNS["clm"], *STEPS, f"hydra.run.dir={run}"]
    assert _interrupt_after(args[:-1], run, cache_dir, 12).returncode == -signal.SIGKILL
    changed = run_cli([*args, "trainer.batch_size=8", "model.dropout=0.2"], cache_dir)
    assert changed.returncode == 2
    message = changed.stderr.strip()
    assert "model.dropout (0.1 -> 0.2)" in message and "trainer.batch_size (16 -> 8)" in message
    again = run_cli([*args, "trainer.resume=none"], cache_dir)
    assert again.returncode == 2 and "trainer.overwrite=true" in again.stderr
    fresh = run_cli([*args, "trainer.resume=none", "trainer.overwrite=true"], cache_dir)
    assert fresh.returncode == 0 and "resuming" not in fresh.stdout
    assert _comparable(run) == _comparable(reference["clm"])


def test_finetune_resume_is_exact(cache_dir, tmp_path):
    glue = write_glue(tmp_path / "glue", n_train=40, n_dev=12)
    args = [
        "finetune",
        "task=sst2",
        f"task.data_dir={glue / 'sst2'}",
        *FT,
        *STEPS,
        "trainer.grad_accum=2",
    ]
    reference = tmp_path / "reference"
    assert run_cli([*args, f"hydra.run.dir={reference}"], cache_dir).returncode == 0
    run = tmp_path / "run"
    assert _interrupt_after(args, run, cache_dir, 13).returncode == -signal.SIGKILL
    resumed = run_cli([*args, f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert _comparable(run) == _comparable(reference) and _same_weights(run, reference)
    assert _untimed_summary(run) == _untimed_summary(reference)


def _untimed_summary(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {k: v for k, v in summary.items() if "seconds" not in k and "per_s" not in k}


def test_unwritable_output_directory(cache_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root may write anywhere but in /sys
    target = locked / "run" if not os.access(locked, os.W_OK) else Path("/sys/llmtrain-test/run")
    result = run_cli(["pretrain", f"hydra.run.dir={target}"], cache_dir)
    locked.chmod(0o700)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("llmtrain pretrain: error: cannot create the run directory: ")
    assert str(target.parent) in line


def test_one_run_directory_has_one_writer_and_a_killed_one_blocks_nothing(cache_dir, tmp_path):
    """A second launch into a live run's directory is refused, naming the holder; once the
    holder is killed (SIGKILL: no chance to clean up) the same command resumes."""
    run = tmp_path / "run"
    args = [*RUNS["clm"], "trainer.log_every=1", "trainer.eval_every=0", "trainer.save_every=5"]
    first = _start([*args, "trainer.max_steps=100000"], run, cache_dir)
    while not (run / "checkpoints" / "step-5").is_dir():
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    second = run_cli([*args, "trainer.max_steps=100000", f"hydra.run.dir={run}"], cache_dir)
    assert first.poll() is None  # the holder trains on
    assert second.returncode == 2
    [line] = second.stderr.strip().splitlines()
    assert f"in use by process {first.pid} on " in line
    first.kill()
    first.wait()
    last = max(int(p.name[5:]) for p in (run / "checkpoints").glob("step-*"))
    resumed = run_cli([*args, f"trainer.max_steps={last + 3}", f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {run / 'checkpoints' / f'step-{last}'}" in resumed.stdout
    steps = [r["step"] for r in _train_rows(run) if r["split"] == "train"]
    assert steps == list(range(1, last + 4))  # each step logged once
