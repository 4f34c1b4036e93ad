"""What a run shows without a terminal (header, evaluations, summary), --quiet, and the
experiment trackers writing their own files offline beside metrics.jsonl."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
from conftest import TINY, read_metrics, run_cli

from llmtrain.console import _fmt


def _blocks(stdout: str) -> dict[str, dict[str, str]]:
    """Plain output's `title` + `  key  value` blocks, by title."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("  "):
            key, _, value = line.strip().partition("  ")
            current[key] = value.strip()
        else:
            current = blocks.setdefault(line, {})
    return blocks


def test_plain_output_has_header_evaluations_and_summary(mlm_run):
    out = (mlm_run / "stdout.txt").read_text()
    summary = json.loads((mlm_run / "summary.json").read_text())
    assert "\x1b[" not in out  # no terminal: no colours, no progress bar
    blocks = _blocks(out)
    header = blocks["llmtrain pretrain"]
    overrides = " ".join(["objective=mlm", "model=bert-tiny", *TINY])
    assert header["command"] == f"llmtrain pretrain {overrides}"
    assert header["run directory"] == str(mlm_run)
    assert header["device"] == "cpu x 1 process, precision no"
    assert f"BertForMaskedLM, {summary['parameters']:,} parameters" in header["model"]
    assert re.fullmatch(
        r"[\d,]+ documents, [\d,]+ tokens, [\d,]+ blocks of 64, concat packing", header["data"]
    )
    assert header["global batch"].startswith("16 sequences")
    assert header["steps"] == f"40 ({40 * 16 * 64:,} tokens)"

    lines = out.splitlines()
    evals = [line for line in lines if line.startswith("eval @ step")]
    assert [e.split(":")[0] for e in evals] == ["eval @ step 0", "eval @ step 20", "eval @ step 40"]
    assert lines.index("llmtrain pretrain") < lines.index(evals[0])
    assert lines.index(evals[-1]) < lines.index("summary")
    shown = blocks["summary"]
    for key in ("loss", "best_loss", "best_step", "tokens", "wall_seconds", "tokens_per_s"):
        assert shown[key] == _fmt(summary[key]), key
    eval_losses = [r["loss"] for r in read_metrics(mlm_run) if r["split"] == "eval"]
    assert summary["best_loss"] == min(eval_losses) and summary["loss"] == eval_losses[-1]
    assert summary["wall_seconds"] >= summary["train_seconds"] > 0
    assert f"run directory: {mlm_run}  (final model: {mlm_run / 'final'})" in lines


INSTALLED = [t for t in ("tensorboard", "mlflow", "wandb") if importlib.util.find_spec(t)]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, cache_dir) -> tuple[Path, str]:
    """One quiet tiny run logging to every installed tracker at once."""
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    settings = [a for a in TINY if not a.startswith(("trainer.max_steps", "trainer.log_every"))]
    result = run_cli(
        [
            "pretrain",
            "--quiet",
            *settings,
            "trainer.max_steps=6",
            "trainer.log_every=2",
            "trainer.eval_every=3",
            f"logger.trackers=[{','.join(INSTALLED)}]",
            f"hydra.run.dir={run_dir}",
        ],
        cache_dir,
    )
    assert result.returncode == 0, result.stderr
    return run_dir, result.stdout


def test_quiet_shows_only_the_summary(tracked_run):
    run_dir, out = tracked_run
    lines = out.splitlines()
    assert not [x for x in lines if x.startswith(("step ", "eval @", "llmtrain pretrain"))], out
    assert "summary" in lines
    assert f"run directory: {run_dir}  (final model: {run_dir / 'final'})" in lines
    assert len([x for x in lines if x.startswith("trackers: ")]) == len(INSTALLED)
    assert [r["step"] for r in read_metrics(run_dir) if r["split"] == "train"] == [2, 4, 6]


def _logged(run_dir: Path, split: str, key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in read_metrics(run_dir) if r["split"] == split]


@pytest.mark.skipif("tensorboard" not in INSTALLED, reason="tensorboard is not installed")
def test_tensorboard_event_files_hold_the_metrics(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = tracked_run
    events = EventAccumulator(str(run_dir / "tensorboard" / "llmtrain"))
    events.Reload()
    for split in ("train", "eval"):
        scalars = [(e.step, e.value) for e in events.Scalars(f"{split}/loss")]
        expected = _logged(run_dir, split, "loss")
        assert [s for s, _ in scalars] == [s for s, _ in expected]
        for (_, got), (_, want) in zip(scalars, expected, strict=True):
            assert math.isclose(got, want, rel_tol=1e-6)


@pytest.mark.skipif("mlflow" not in INSTALLED, reason="mlflow is not installed")
def test_mlflow_local_store_holds_the_run(tracked_run):
    import mlflow

    run_dir, _ = tracked_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("llmtrain").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.params["trainer.max_steps"] == "6"
    history = client.get_metric_history(run.info.run_id, "eval/loss")
    assert [(m.step, m.value) for m in history] == _logged(run_dir, "eval", "loss")


@pytest.mark.skipif("wandb" not in INSTALLED, reason="wandb is not installed (optional extra)")
def test_wandb_writes_an_offline_run(tracked_run):
    run_dir, out = tracked_run
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (record,) = offline.glob("run-*.wandb")
    assert record.stat().st_size > 0
    assert "wandb: " not in out  # its banner is silenced
