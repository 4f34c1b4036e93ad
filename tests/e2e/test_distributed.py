"""Several processes on the CPU (gloo), launched with torchrun as a user would."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, cli_env, read_metrics, run_cli
from glue_fixtures import write_glue

pytestmark = pytest.mark.distributed

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
BASE = [
    a
    for a in TINY
    if not a.startswith(("trainer.batch_size", "trainer.max_steps", "trainer.save_every"))
]
BASE += [
    "model.dropout=0.0",
    "trainer.max_steps=12",
    "trainer.log_every=1",
    "trainer.eval_every=4",
    "trainer.save_every=4",
]


def _env(cache: Path) -> dict:
    return {**cli_env(cache), "OMP_NUM_THREADS": "1"}


def _torchrun(
    args: list[str],
    cache: Path,
    cwd: Path | None = None,
    procs: int = 2,
    entry: tuple[str, ...] = ("-m", "llmtrain"),
) -> subprocess.Popen:
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", str(procs), *entry, *args]
    return subprocess.Popen(
        cmd, env=_env(cache), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _done(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _losses(run: Path) -> list[tuple]:
    return [(r["step"], r["split"], r["loss"]) for r in read_metrics(run)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, cache_dir) -> Path:
    run = tmp_path_factory.mktemp("ddp") / "run"
    result = _done(
        _torchrun(["pretrain", *BASE, "trainer.batch_size=8", f"hydra.run.dir={run}"], cache_dir)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_two_processes_match_one_with_twice_the_batch(ddp_run, cache_dir, tmp_path):
    single = tmp_path / "single"
    result = run_cli(
        ["pretrain", *BASE, "trainer.batch_size=16", f"hydra.run.dir={single}"], cache_dir
    )
    assert result.returncode == 0, result.stderr
    two, one = _losses(ddp_run), _losses(single)
    assert [r[:2] for r in two] == [r[:2] for r in one]
    for a, b in zip(two, one, strict=True):
        assert a[2] == pytest.approx(b[2], rel=1e-5), (a, b)
    assert json.loads((ddp_run / "summary.json").read_text())["tokens"] == 12 * 16 * 64


def test_one_run_directory_whatever_the_processes(cache_dir, tmp_path):
    result = _done(
        _torchrun(
            [
                "pretrain",
                *BASE,
                "trainer.max_steps=2",
                "trainer.warmup_steps=1",
                "trainer.batch_size=8",
            ],
            cache_dir,
            cwd=tmp_path,
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "pretrain").glob("*/*"))
    assert len(runs) == 1 and (runs[0] / "summary.json").is_file() and (runs[0] / ".hydra").is_dir()
    # rank 0 holds the directory for the launch, and logs for it
    assert (runs[0] / ".lock").is_file() and "summary" in (runs[0] / "run.log").read_text()
    lines = result.stdout.splitlines()
    assert lines.count("llmtrain pretrain") == 1 and lines.count("summary") == 1  # rank 0 speaks
    (device,) = [line for line in lines if line.startswith("  device ")]
    assert device.endswith(" x 2 processes, precision no"), device


def test_resume_under_two_processes_is_exact(ddp_run, cache_dir, tmp_path):
    run = tmp_path / "run"
    args = ["pretrain", *BASE, "trainer.batch_size=8", f"hydra.run.dir={run}"]
    proc = _torchrun(args, cache_dir)
    while proc.poll() is None:
        if (run / "metrics.jsonl").exists() and any(r["step"] >= 6 for r in read_metrics(run)):
            proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both processes
            break
        time.sleep(0.01)
    stopped = _done(proc)
    assert stopped.returncode != 0 and "stopped by SIGTERM" in stopped.stderr
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    one = run_cli([*args], cache_dir)  # one process with half the global batch: refused
    assert one.returncode == 2 and "written by 2 processes" in one.stderr
    assert "trainer.grad_accum=2" in one.stderr
    resumed = _done(_torchrun(args, cache_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _losses(run) == _losses(ddp_run)


def test_a_two_process_checkpoint_resumes_with_one_and_the_same_global_batch(
    ddp_run, cache_dir, tmp_path
):
    """Elastic resume: the data position is global, so one process with grad_accum=2 (the same
    global batch) continues the two-process run's checkpoint at step 8 and logs its training
    losses. (Its evaluations see half the examples: trainer.eval_batches counts each process's
    batches.)"""
    run = tmp_path / "run"
    shutil.copytree(ddp_run, run, ignore=shutil.ignore_patterns("final", ".lock"))
    for later in [p for p in (run / "checkpoints").iterdir() if p.name != "step-8"]:
        shutil.rmtree(later)
    args = ["pretrain", *BASE, "trainer.batch_size=8", "trainer.grad_accum=2"]
    resumed = run_cli([*args, f"hydra.run.dir={run}"], cache_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {run / 'checkpoints' / 'step-8'}" in resumed.stdout
    one, two = _losses(run), _losses(ddp_run)
    assert [r[:2] for r in one] == [r[:2] for r in two]
    for a, b in zip(one, two, strict=True):
        if a[1] == "train":
            assert a[2] == pytest.approx(b[2], rel=1e-5), (a, b)


def test_evaluation_sees_each_example_once(cache_dir, tmp_path):
    glue = write_glue(tmp_path / "glue", n_train=40, n_dev=15)  # 15: not a multiple of 2 x batch
    args = [
        "finetune",
        "task=sst2",
        f"task.data_dir={glue / 'sst2'}",
        "model.hidden_size=32",
        "model.intermediate_size=64",
        "tokenizer.vocab_size=300",
        "tokenizer.min_frequency=1",
        "trainer.epochs=null",
        "trainer.max_steps=4",
        "trainer.batch_size=4",
        "trainer.warmup_steps=1",
        "trainer.eval_every=2",
    ]
    run = tmp_path / "run"
    result = _done(_torchrun([*args, f"hydra.run.dir={run}"], cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (run / "predictions" / "validation.tsv").read_text().splitlines()[1:]
    assert sorted(int(r.split("\t")[0]) for r in rows) == list(range(15))
    summary = json.loads((run / "summary.json").read_text())
    alone = tmp_path / "eval"
    again = run_cli(
        [
            "evaluate",
            "task=sst2",
            f"task.data_dir={glue / 'sst2'}",
            f"model.from_run={run}",
            f"hydra.run.dir={alone}",
        ],
        cache_dir,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((alone / "summary.json").read_text())["accuracy"] == pytest.approx(
        summary["best_accuracy"]
    )


def test_a_half_made_launch_is_one_line(cache_dir, tmp_path):
    env = {**_env(cache_dir), "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    env.pop("MASTER_ADDR", None)
    result = subprocess.run(
        [sys.executable, "-m", "llmtrain", "pretrain", f"hydra.run.dir={tmp_path / 'r'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "cannot join the 2 launched processes" in line


def test_sharding_strategies_are_refused_on_the_cpu(cache_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = run_cli(["pretrain", "distributed=fsdp", f"hydra.run.dir={tmp_path / 'r'}"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "distributed=fsdp needs GPUs; on the CPU use distributed=ddp"
    )


def _fsdp(args: list[str], cache: Path) -> subprocess.Popen:
    """Two processes through Accelerate's FSDP2 path, forced on the CPU (tests/fsdp_on_cpu.py)."""
    shim = str(Path(__file__).resolve().parents[1] / "fsdp_on_cpu.py")
    return _torchrun([*args, "distributed=fsdp"], cache, entry=(shim,))


def test_fsdp_trains_like_ddp_and_resumes_exactly_from_shards(ddp_run, cache_dir, tmp_path):
    # BERT's MLM decoder is its word embeddings: sharding the embeddings as a group of their
    # own split that tie (on the GPU the decoder then stayed at its initial weights).
    run = tmp_path / "run"
    args = ["pretrain", *BASE, "trainer.batch_size=8", f"hydra.run.dir={run}"]
    sharded = [*args, "distributed.fsdp_state_dict=sharded"]
    proc = _fsdp(sharded, cache_dir)
    while proc.poll() is None:
        if (run / "metrics.jsonl").exists() and any(r["step"] >= 6 for r in read_metrics(run)):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.01)
    stopped = _done(proc)
    assert stopped.returncode != 0 and "stopped by SIGTERM" in stopped.stderr
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert list((run / "checkpoints").glob("*/shards"))  # one shard per process
    resumed = _done(_fsdp(sharded, cache_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for a, b in zip(_losses(run), _losses(ddp_run), strict=True):
        assert a[:2] == b[:2] and a[2] == pytest.approx(b[2], rel=1e-4), (a, b)
    from transformers import AutoModelForMaskedLM

    final = AutoModelForMaskedLM.from_pretrained(run / "final")
    assert final.cls.predictions.decoder.weight is final.bert.embeddings.word_embeddings.weight
    reference = AutoModelForMaskedLM.from_pretrained(ddp_run / "final")
    for (name, p), q in zip(final.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-4), name
