"""`llmtrain pretrain data=hf data.streaming=true` on a local dataset directory: the README's
command line trains from the stream as typed, a resumed run continues exactly where the
stream stood (across an epoch's end), and `llmtrain evaluate` reads the same held-out blocks."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import CLM_SMALL, PARAGRAPHS, cli_summary, run_cli

from llmtrain.rundir import read_metrics


def _dataset(tmp_path: Path) -> Path:
    """A local dataset directory as a hub dataset is laid out: jsonl files of one split."""
    directory = tmp_path / "corpus"
    directory.mkdir()
    for part in range(2):
        docs = [f"{PARAGRAPHS[i % len(PARAGRAPHS)]} part {part} {i}" for i in range(100)]
        lines = "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs))
        (directory / f"train-{part}.jsonl").write_text(lines)
    return directory


def test_a_streamed_run_trains_resumes_exactly_and_evaluates_the_same(tmp_path, cache_dir):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = "llmtrain pretrain data=hf data.name=HuggingFaceFW/fineweb-edu data.streaming=true "
    assert line + "objective=clm model=gpt2-tiny\n" in readme  # the line this runs, local data
    data = ["data=hf", f"data.name={_dataset(tmp_path)}", "data.streaming=true"]
    args = ["pretrain", *data, *CLM_SMALL, "trainer.log_every=5"]
    whole_run = tmp_path / "whole"
    result = run_cli(
        [*args, "trainer.max_steps=40", "trainer.num_workers=1", f"hydra.run.dir={whole_run}"],
        cache_dir,
    )
    assert result.returncode == 0, result.stderr
    assert "streamed from" in result.stdout and "tokenised as read" in result.stdout
    whole = json.loads((whole_run / "summary.json").read_text())
    rows = [r for r in read_metrics(whole_run) if r["split"] == "train"]
    assert rows[-1]["epoch"] >= 1  # the stream was read more than once
    evals = [r for r in read_metrics(whole_run) if r["split"] == "eval"]
    assert evals[-1]["loss"] < evals[0]["loss"] - 1.0  # it learns from the stream

    run = tmp_path / "resumed"
    cli_summary([*args, "trainer.max_steps=20"], run, cache_dir)
    result = run_cli([*args, "trainer.max_steps=40", f"hydra.run.dir={run}"], cache_dir)
    assert result.returncode == 0 and "resuming from" in result.stdout, result.stderr
    later = [r for r in read_metrics(run) if r["split"] == "train" and r["step"] > 20]
    expected = [r for r in rows if r["step"] > 20]
    assert [round(r["loss"], 4) for r in later] == [round(r["loss"], 4) for r in expected]

    evaluated = cli_summary(
        ["evaluate", *data, f"model.from_run={whole_run}", "trainer.block_size=16"],
        tmp_path / "eval",
        cache_dir,
    )
    assert abs(evaluated["loss"] - whole["loss"]) < 1e-4
