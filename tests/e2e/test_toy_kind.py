"""A task kind from outside llmtrain (tests/toy_kind: a module and its config) fine-tunes and
evaluates end to end through the real CLI: its registry entry is its module path, its schema
is checked at start, its head, objective and metric run, its prediction files are written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FT_TINY, run_cli

TOY = Path(__file__).resolve().parents[1] / "toy_kind"
SETTINGS = [
    "task=toy",
    f"hydra.searchpath=[file://{TOY / 'configs'}]",
    "trainer.epochs=null",
    "trainer.max_steps=6",
    "trainer.batch_size=8",
    "trainer.log_every=2",
    "trainer.eval_every=3",
    "trainer.save_every=3",
    *FT_TINY,
]


def _env() -> dict[str, str]:
    path = [str(TOY), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, cache_dir) -> Path:
    run = tmp_path_factory.mktemp("toy") / "run"
    result = run_cli(["finetune", *SETTINGS, f"hydra.run.dir={run}"], cache_dir, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "toy: word-count parity, main metric parity_accuracy" in result.stdout
    return run


def test_a_kind_outside_llmtrain_fine_tunes(toy_run):
    summary = json.loads((toy_run / "summary.json").read_text())
    assert summary["task"] == "toy" and summary["main_metric"] == "parity_accuracy"
    assert 0 <= summary["best_parity_accuracy"] <= 1 and summary["steps"] == 6
    saved = (toy_run / ".hydra" / "config.yaml").read_text()
    assert "kind: toy_parity" in saved and "examples: 40" in saved  # the config file's value
    lines = (toy_run / "predictions" / "validation.txt").read_text().splitlines()
    assert len(lines) == 40 and {line.split("\t")[1] for line in lines} <= {"even", "odd"}
    config = json.loads((toy_run / "final" / "config.json").read_text())
    assert config["id2label"] == {"0": "even", "1": "odd"}


def test_a_kind_outside_llmtrain_evaluates(toy_run, cache_dir, tmp_path):
    args = ["evaluate", *SETTINGS[:2], f"model.from_run={toy_run}", "trainer.batch_size=8"]
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'eval'}"], cache_dir, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    trained = json.loads((toy_run / "summary.json").read_text())
    assert summary["parity_accuracy"] == pytest.approx(trained["best_parity_accuracy"])
    assert (tmp_path / "eval" / "predictions" / "validation.txt").is_file()


def test_its_schema_names_a_key_it_does_not_take(cache_dir, tmp_path):
    args = ["finetune", *SETTINGS, "task.doc_stride=3", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli(args, cache_dir, env=_env())
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("llmtrain finetune: error: task.doc_stride: no such option for task=toy")
