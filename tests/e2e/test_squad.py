"""Extractive QA through the CLI: `task=squad` / `task=squad_v2` runs end to end, reloaded and
reproduced by evaluate, and a bad answer that stops the CLI with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FT_TINY, cli_summary, read_metrics, run_cli
from span_fixtures import SQUAD_TASKS

from llmtrain.metrics import squad_metrics


def test_bad_answer_stops_the_cli_with_one_line(squad_files, cache_dir, tmp_path):
    data = json.loads((squad_files / "squad-dev.json").read_text())
    data["data"][1]["paragraphs"][0]["qas"][2]["answers"][0]["text"] = "Lisbon"
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps(data))
    args = ["finetune", "task=squad", f"task.train_file={squad_files / 'squad-train.json'}"]
    result = run_cli([*args, f"task.validation_file={dev}", f"hydra.run.dir={tmp_path}"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llmtrain finetune: error: {dev}: question 'q9-2': answer 'Lisbon' is not at "
        "answer_start=221 of its context (there: 'Tokyo ')"
    ]


@pytest.fixture(scope="module")
def squad_sweep(squad_files, cache_dir, tmp_path_factory) -> Path:
    """Both tasks fine-tuned in one multirun: windows of 48 tokens sharing 16."""
    sweep = tmp_path_factory.mktemp("squad-sweep")
    args = [
        "finetune",
        "-m",
        f"task={','.join(SQUAD_TASKS)}",
        f"task.train_file={squad_files}/${{task.name}}-train.json",
        f"task.validation_file={squad_files}/${{task.name}}-dev.json",
        "task.max_length=48",
        "task.doc_stride=16",
        *FT_TINY,
        "trainer.lr=3e-3",
        "trainer.max_steps=12",
        "trainer.batch_size=16",
        "trainer.log_every=4",
        "trainer.eval_every=6",
        "trainer.save_every=12",
    ]
    result = run_cli([*args, f"hydra.sweep.dir={sweep}"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.mark.parametrize("task", SQUAD_TASKS)
def test_squad_run_end_to_end(squad_sweep, squad_files, task):
    run = squad_sweep / str(SQUAD_TASKS.index(task))
    evals = [r for r in read_metrics(run) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 6, 12]
    assert evals[-1]["loss"] < evals[0]["loss"]  # it learns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == task and summary["main_metric"] == "f1"
    # The reported scores are SQuAD's formula on the written answers against the dev file.
    answers = json.loads((run / "predictions" / "validation.json").read_text())
    dev = json.loads((squad_files / f"{task}-dev.json").read_text())
    golds = {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for article in dev["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    }
    assert set(answers) == set(golds)
    expected = squad_metrics(answers, golds, v2=task == "squad_v2")
    keys = ["exact", "f1"] + (["has_ans_f1", "no_ans_f1"] if task == "squad_v2" else [])
    assert set(keys) <= set(expected)
    for key, value in expected.items():
        assert summary[f"best_{key}"] == pytest.approx(value, abs=1e-12), key


def test_final_reloads_and_evaluate_reproduces_the_run(
    squad_sweep, squad_files, cache_dir, tmp_path
):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    run = squad_sweep / "1"  # squad_v2
    model = AutoModelForQuestionAnswering.from_pretrained(run / "final")
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    batch = tokenizer(
        "where did Mary move to ?", "Mary moved to Berlin in spring .", return_tensors="pt"
    )
    with torch.no_grad():
        out = model(**batch)
    assert out.start_logits.shape == out.end_logits.shape == batch["input_ids"].shape
    out_dir = tmp_path / "eval"
    args = [
        "evaluate",
        "task=squad_v2",
        f"task.validation_file={squad_files / 'squad_v2-dev.json'}",
        "task.max_length=48",
        "task.doc_stride=16",
        f"model.from_run={run}",
        "trainer.batch_size=16",
    ]
    evaluated = cli_summary(args, out_dir, cache_dir)
    trained = json.loads((run / "summary.json").read_text())
    for key in ("f1", "exact", "no_ans_f1", "loss"):
        assert evaluated[key] == pytest.approx(trained[f"best_{key}"]), key
    assert (out_dir / "predictions" / "validation.json").read_text() == (
        run / "predictions" / "validation.json"
    ).read_text()
