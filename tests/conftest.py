"""Shared fixtures: one cache per session, the real CLI in a subprocess, tiny runs to reuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# metrics.jsonl's rows: the one reader, llmtrain's own, for every test.
from llmtrain.rundir import read_metrics as read_metrics

# The repository's root: scripts/, configs/, docs/ are under it.
REPO = Path(__file__).resolve().parents[1]

# A tiny model and a short run: enough to see the loss fall, quick on 2 cores.
TINY = [
    "tokenizer.vocab_size=2000",
    "model.hidden_size=64",
    "model.intermediate_size=256",
    "trainer.max_steps=40",
    "trainer.batch_size=16",
    "trainer.block_size=64",
    "trainer.lr=3e-3",
    "trainer.log_every=10",
    "trainer.eval_every=20",
    "trainer.save_every=20",
    "trainer.eval_batches=8",
]


# A very small fine-tune: these tests check plumbing and numbers, not quality.
FT_TINY = [
    "model.hidden_size=32",
    "model.intermediate_size=64",
    "tokenizer.vocab_size=300",
    "tokenizer.min_frequency=1",
    "trainer.lr=1e-3",
]


# A very small GPT-2 and tokenizer at a constant learning rate after 10 warm-up steps, so that a
# shorter first attempt has the learning rates of the whole run (the resume tests).
CLM_SMALL = [
    "objective=clm",
    "model=gpt2-tiny",
    "model.hidden_size=32",
    "model.intermediate_size=64",
    "tokenizer.vocab_size=300",
    "tokenizer.min_frequency=1",
    "trainer.batch_size=8",
    "trainer.block_size=16",
    "trainer.eval_every=100",
    "trainer.save_every=100",
    "trainer.schedule=constant",
    "trainer.warmup_steps=10",
]


# Forty two-line documents, for the corpus readers and tokenizers.
PARAGRAPHS = [
    f"Document {i} says something about topic {i % 7}.\nIt has a second line." for i in range(40)
]


@pytest.fixture
def paragraphs():
    """PARAGRAPHS five times over, as a corpus."""
    import datasets

    return datasets.Dataset.from_dict({"text": PARAGRAPHS * 5})


def tiny_gpt2(**overrides):
    """A one-layer GPT-2 over a 64-token vocabulary, the same weights every call."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    settings = dict(
        vocab_size=64,
        bos_token_id=0,
        eos_token_id=0,
        n_embd=32,
        n_layer=1,
        n_head=2,
        n_positions=16,
    )
    return GPT2LMHeadModel(GPT2Config(**{**settings, **overrides}))


def tiny_bert(model_class=None, attention: str | None = None, **overrides):
    """A BERT (BertForMaskedLM unless `model_class`) over a 64-token vocabulary unless
    `vocab_size`, one layer unless `num_hidden_layers`, with `attention` as its attention
    implementation where given; the same weights every call, in eval mode."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    settings = dict(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    config = BertConfig(**{**settings, **overrides})
    if attention is not None:
        config._attn_implementation = attention
    return (model_class or BertForMaskedLM)(config).eval()


def random_blocks(n: int = 64, length: int = 16):
    import numpy as np

    from llmtrain.data.packing import PackedDataset
    from llmtrain.data.tokens import ArrayTokens

    ids = np.random.default_rng(0).integers(0, 64, size=n * length).astype(np.uint16)
    return PackedDataset(ArrayTokens(ids), length)


def fit_tiny(run_dir: Path, objective, model=None, data=None, **trainer):
    """llmtrain's fit() on random blocks (or `data`) with a tiny GPT-2; returns
    (run, model, result). Evaluation always uses the random blocks."""
    from llmtrain.config import TrainerConfig
    from llmtrain.console import Console
    from llmtrain.rundir import RunDir
    from llmtrain.train.distributed import make_accelerator
    from llmtrain.train.evaluator import Evaluator
    from llmtrain.train.job import Job, total_steps
    from llmtrain.train.loop import fit

    model = model or tiny_gpt2()
    blocks = random_blocks()
    train_set = blocks if data is None else data
    settings = dict(
        max_steps=8,
        batch_size=4,
        block_size=16,
        warmup_steps=1,
        log_every=1,
        eval_every=0,
        save_every=4,
    )
    run = RunDir(run_dir)
    cfg = TrainerConfig(**{**settings, **trainer})
    accelerator = make_accelerator(cfg)
    steps = total_steps(cfg, len(train_set), accelerator.num_processes)
    job = Job(cfg, accelerator, run, Console(enabled=False), {}, steps)
    evaluator = Evaluator({"validation": blocks}, objective, cfg, accelerator)
    result = fit(job, model, objective, train_set, evaluator)
    return run, model, result


@pytest.fixture(scope="module")
def glue(tmp_path_factory) -> Path:
    """Every GLUE task in its own layout, a few rows each (glue_fixtures.write_glue)."""
    from glue_fixtures import write_glue

    return write_glue(tmp_path_factory.mktemp("glue"), n_train=6, n_dev=4)


@pytest.fixture(scope="module")
def squad_files(tmp_path_factory) -> Path:
    """SQuAD and SQuAD 2.0 files: <task>-train.json (8 articles) and <task>-dev.json (3)."""
    from span_fixtures import SQUAD_TASKS, write_squad

    d = tmp_path_factory.mktemp("squad")
    for task in SQUAD_TASKS:
        write_squad(d / f"{task}-train.json", 8, v2=task == "squad_v2")
        write_squad(d / f"{task}-dev.json", 3, v2=task == "squad_v2", offset=8)
    return d


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: the stdlib corpus and tokenizers are built once."""
    return tmp_path_factory.mktemp("llmtrain-cache")


def cli_env(cache: Path) -> dict[str, str]:
    """The environment of a CLI run in the tests: the session's cache, unbuffered output."""
    env = {**os.environ, "LLMTRAIN_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(
    args: list[str], cache: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m llmtrain ARGS` as a user would run it (no terminal: plain output), with `env`
    added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "llmtrain", *args],
        capture_output=True,
        text=True,
        env={**cli_env(cache), **(env or {})},
        cwd=cwd,
        timeout=600,
    )


def cli_summary(args: list[str], run_dir: Path, cache: Path) -> dict:
    """`python -m llmtrain ARGS` run in run_dir: it exits 0 (its stderr says why not), and its
    summary.json."""
    result = run_cli([*args, f"hydra.run.dir={run_dir}"], cache)
    assert result.returncode == 0, result.stderr
    return json.loads((run_dir / "summary.json").read_text())


def key_line(out: str, key: str) -> str:
    """The help's line for `key` (its value and help follow the key)."""
    return next(line for line in out.splitlines() if line.split()[:1] == [key])


def without(args: list[str], *keys: str) -> list[str]:
    """`args` less the settings of `keys` (to give them other values)."""
    return [a for a in args if a.split("=", 1)[0] not in keys]


def _tiny_run(tmp_path_factory, cache_dir, name: str, args: list[str]) -> Path:
    run_dir = tmp_path_factory.mktemp(name) / "run"
    result = run_cli(["pretrain", *args, *TINY, f"hydra.run.dir={run_dir}"], cache_dir)
    assert result.returncode == 0, result.stderr + result.stdout
    (run_dir / "stdout.txt").write_text(result.stdout)
    return run_dir


@pytest.fixture(scope="session")
def mlm_run(tmp_path_factory, cache_dir) -> Path:
    return _tiny_run(tmp_path_factory, cache_dir, "mlm", ["objective=mlm", "model=bert-tiny"])


@pytest.fixture(scope="session")
def clm_run(tmp_path_factory, cache_dir) -> Path:
    return _tiny_run(tmp_path_factory, cache_dir, "clm", ["objective=clm", "model=gpt2-tiny"])


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, cache_dir) -> Path:
    """A 2-job MLM sweep over trainer.lr (1e-3, 3e-4), 10 steps each: <sweep>/0, <sweep>/1.
    The README's sweep line as printed, plus a small model and few steps: its sweep directory
    is the default one, multirun/pretrain/<date>/<time>/, under the working directory."""
    cwd = tmp_path_factory.mktemp("sweep")
    short = without(TINY, "trainer.max_steps", "trainer.lr") + [
        "trainer.max_steps=10",
        "trainer.eval_every=0",
        "trainer.save_every=0",
    ]
    result = run_cli(["pretrain", "-m", "trainer.lr=1e-3,3e-4", *short], cache_dir, cwd=cwd)
    assert result.returncode == 0, result.stderr
    [sweep] = (cwd / "multirun" / "pretrain").glob("*/*")
    return sweep
