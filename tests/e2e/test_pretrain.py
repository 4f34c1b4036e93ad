"""End to end through the real command: runs learn, write the run directory, reload anywhere."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from accelerate import Accelerator
from conftest import read_metrics
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, pipeline

from llmtrain.config import PretrainConfig
from llmtrain.data import corpus
from llmtrain.data.packing import PackedDataset
from llmtrain.objectives import build_objective
from llmtrain.train.evaluator import evaluate


def _evals(run_dir: Path) -> list[float]:
    return [row["loss"] for row in read_metrics(run_dir) if row["split"] == "eval"]


def test_mlm_run_lowers_eval_loss(mlm_run):
    evals = _evals(mlm_run)
    assert len(evals) >= 3  # at the start, mid-way, at the end
    assert evals[-1] < evals[0] - 1.0, evals


def test_clm_run_lowers_eval_loss(clm_run):
    evals = _evals(clm_run)
    assert evals[-1] < evals[0] - 1.0, evals


def test_run_directory_holds_the_contract(mlm_run):
    assert (mlm_run / ".hydra" / "config.yaml").is_file()
    assert (mlm_run / ".hydra" / "overrides.yaml").is_file()
    rows = read_metrics(mlm_run)
    train = [r for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    assert train and evals
    for r in train:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= r.keys()
    for r in evals:
        assert {"step", "loss", "perplexity"} <= r.keys()
        assert math.isclose(r["perplexity"], math.exp(r["loss"]), rel_tol=1e-9)
    assert [r["step"] for r in train] == [10, 20, 30, 40]
    checkpoints = sorted(p.name for p in (mlm_run / "checkpoints").iterdir())
    assert checkpoints == ["step-20", "step-40"]
    for name in (
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng.pt",
        "trainer_state.json",
        "COMPLETE",
    ):
        assert (mlm_run / "checkpoints" / "step-40" / name).is_file(), name
    state = json.loads((mlm_run / "checkpoints" / "step-40" / "trainer_state.json").read_text())
    progress = state["state"]["progress"]
    assert progress["step"] == 40 and state["config"]["trainer"]["max_steps"] == 40
    summary = json.loads((mlm_run / "summary.json").read_text())
    for key in (
        "loss",
        "perplexity",
        "steps",
        "tokens",
        "train_seconds",
        "tokens_per_s",
        "parameters",
    ):
        assert key in summary, key
    assert summary["steps"] == 40 and summary["tokens"] == 40 * 16 * 64
    assert summary["loss"] == evals[-1]["loss"]
    assert "run directory: " + str(mlm_run) in (mlm_run / "stdout.txt").read_text()


def _eval_with_llmtrain(run_dir: Path, model: torch.nn.Module, tokenizer) -> float:
    """The run's own evaluation, on a model that transformers alone loaded."""
    cfg = OmegaConf.to_object(
        OmegaConf.merge(
            OmegaConf.structured(PretrainConfig), OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        )
    )
    plan = corpus.plan_for(cfg.data, tokenizer, cfg.trainer.seed)  # prepared by the run
    blocks = PackedDataset(corpus.splits(plan)["validation"], cfg.trainer.block_size)
    objective = build_objective(cfg.objective, tokenizer)
    splits = {"validation": blocks}
    return evaluate(model, objective, splits, cfg.trainer, Accelerator(cpu=True)).metrics["loss"]


def _reloads_with_its_loss(run: Path, auto_class, cache_dir, monkeypatch):
    """final/ loaded by `auto_class` (and its tokenizer) scores the run's summary loss under
    llmtrain's evaluation; returns (final, tokenizer)."""
    monkeypatch.setenv("LLMTRAIN_CACHE", str(cache_dir))
    final = run / "final"
    model = auto_class.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    summary = json.loads((run / "summary.json").read_text())
    assert math.isclose(_eval_with_llmtrain(run, model, tokenizer), summary["loss"], rel_tol=1e-5)
    return final, tokenizer


def test_final_mlm_reloads_with_transformers_alone(mlm_run, cache_dir, monkeypatch):
    final, tokenizer = _reloads_with_its_loss(mlm_run, AutoModelForMaskedLM, cache_dir, monkeypatch)
    predictions = pipeline("fill-mask", model=str(final))(
        f"return the {tokenizer.mask_token} of the list."
    )
    assert len(predictions) == 5 and all("token_str" in p for p in predictions)


def test_final_clm_reloads_with_transformers_alone(clm_run, cache_dir, monkeypatch):
    final, tokenizer = _reloads_with_its_loss(clm_run, AutoModelForCausalLM, cache_dir, monkeypatch)
    out = pipeline("text-generation", model=str(final))(
        "Return the", max_new_tokens=5, do_sample=False
    )
    assert out[0]["generated_text"].startswith("Return the")


def test_sweep_runs_each_job_in_its_own_directory(tiny_sweep):
    sweep = tiny_sweep
    for job, lr in (("0", 1e-3), ("1", 3e-4)):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["steps"] == 10
        config = OmegaConf.load(sweep / job / ".hydra" / "config.yaml")
        assert config.trainer.lr == lr


def test_continue_from_a_runs_final_weights_and_tokenizer(mlm_run, cache_dir, tmp_path):
    from conftest import TINY, run_cli

    run_dir = tmp_path / "again"
    args = [
        "pretrain",
        *TINY,
        "trainer.max_steps=5",
        "trainer.warmup_steps=1",
        f"model.name_or_path={mlm_run / 'final'}",
    ]
    result = run_cli([*args, f"hydra.run.dir={run_dir}"], cache_dir)
    assert result.returncode == 0, result.stderr
    # Same weights, tokenizer, data and masks: the new run starts where the old one ended.
    first = read_metrics(run_dir)[0]
    assert first["step"] == 0 and math.isclose(first["loss"], _evals(mlm_run)[-1], rel_tol=1e-5)
    tokenizer_files = {p.name for p in (run_dir / "final").iterdir()}
    assert {
        "tokenizer.json",
        "tokenizer_config.json",
        "config.json",
        "model.safetensors",
    } <= tokenizer_files
