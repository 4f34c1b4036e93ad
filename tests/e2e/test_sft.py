"""Supervised fine-tuning (task=sft) through the CLI: a run learns and writes its outputs (samples
and ROUGE-L agree with what is written), final/ generates in a pipeline, evaluate reports the
same loss, a bad row gives one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import read_metrics, run_cli
from rouge_score.rouge_scorer import RougeScorer
from sft_fixtures import sft_rows, write_jsonl
from transformers import pipeline


@pytest.fixture(scope="session")
def sft_files(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sft-data")
    rows = sft_rows()
    return write_jsonl(root / "train.jsonl", rows * 2), write_jsonl(root / "dev.jsonl", rows[:6])


SFT = [
    "task=sft",
    "task.max_length=48",
    "task.samples=4",
    "task.max_new_tokens=8",
    "task.rouge=true",
    "trainer.epochs=null",
    "trainer.max_steps=80",
    "trainer.batch_size=4",
    "trainer.lr=5e-3",
    "trainer.warmup_steps=2",
    "trainer.log_every=10",
    "trainer.eval_every=40",
    "trainer.save_every=80",
]


@pytest.fixture(scope="session")
def sft_run(clm_run, sft_files, cache_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("sft") / "run"
    train, dev = sft_files
    args = [f"model.from_run={clm_run}", f"task.train_file={train}", f"task.validation_file={dev}"]
    result = run_cli(["finetune", *SFT, *args, f"hydra.run.dir={run_dir}"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_sft_run_learns_and_writes_its_outputs(sft_run, sft_files):
    evals = [r for r in read_metrics(sft_run) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 40, 80]
    assert evals[-1]["loss"] < 0.75 * evals[0]["loss"]
    summary = json.loads((sft_run / "summary.json").read_text())
    assert summary["task"] == "sft" and summary["main_metric"] == "loss"
    # The best model is the lowest validation loss, measured again on final/.
    best = min(evals, key=lambda r: r["loss"])
    assert summary["best_step"] == best["step"]
    assert summary["best_loss"] == pytest.approx(best["loss"], rel=1e-5)
    assert summary["best_perplexity"] == pytest.approx(torch.tensor(best["loss"]).exp().item())
    # samples.jsonl holds the generations behind best_rouge_l.
    samples = [json.loads(line) for line in (sft_run / "predictions/samples.jsonl").open()]
    dev = [json.loads(line) for line in sft_files[1].open()][:4]
    assert len(samples) == 4
    assert samples[0]["prompt"] == dev[0]["prompt"]
    assert samples[0]["reference"] == dev[0]["response"]
    assert samples[1]["reference"] == dev[1]["messages"][-1]["content"]
    assert samples[1]["prompt"].endswith("<|assistant|>\n")
    scorer = RougeScorer(["rougeL"])
    expected = sum(
        scorer.score(s["reference"], s["generation"])["rougeL"].fmeasure for s in samples
    )
    assert summary["best_rouge_l"] == pytest.approx(expected / 4, abs=1e-9)


def test_final_generates_in_a_pipeline(sft_run):
    generator = pipeline("text-generation", model=str(sft_run / "final"))
    samples = [json.loads(line) for line in (sft_run / "predictions/samples.jsonl").open()]
    for sample in samples:
        out = generator(sample["prompt"], max_new_tokens=8, do_sample=False, return_full_text=False)
        assert out[0]["generated_text"] == sample["generation"]
    # The chat template used in training is saved with the tokenizer.
    chat = generator([{"role": "user", "content": "Colour of lime?"}], max_new_tokens=4)
    assert chat[0]["generated_text"][-1]["role"] == "assistant"


def test_evaluate_reports_the_same_loss(sft_run, sft_files, cache_dir, tmp_path):
    run_dir = tmp_path / "eval"
    args = ["task=sft", "task.max_length=48", "task.samples=2", "task.max_new_tokens=8"]
    args += [f"model.from_run={sft_run}", f"task.validation_file={sft_files[1]}"]
    args += [f"hydra.run.dir={run_dir}"]
    result = run_cli(["evaluate", *args], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    trained = json.loads((sft_run / "summary.json").read_text())
    assert summary["loss"] == pytest.approx(trained["best_loss"], rel=1e-5)
    samples = (run_dir / "predictions/samples.jsonl").read_text().splitlines()
    assert [json.loads(s)["generation"] for s in samples] == [
        json.loads(s)["generation"]
        for s in (sft_run / "predictions/samples.jsonl").read_text().splitlines()[:2]
    ]


def test_bad_row_through_the_cli(cache_dir, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c"}])
    args = ["finetune", "task=sft", "model=gpt2-tiny", f"task.train_file={bad}"]
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llmtrain finetune: error: {bad}:2: a prompt without a response "
        "(field 'response', task.response_field)"
    ]
    assert not (tmp_path / "run" / "checkpoints").exists()
