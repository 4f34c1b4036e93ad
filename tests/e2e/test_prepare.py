"""`llmtrain prepare` as a user runs it: it says where the shards are and how much they hold,
pretrain then trains without preparing; a SIGKILL in the middle loses nothing (the rerun redoes
no complete shard and gives identical shards); shares of a SLURM array add up to the whole;
bad input ends in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PARAGRAPHS, cli_env, cli_summary, run_cli

TOKENIZER = ["tokenizer.vocab_size=300", "tokenizer.min_frequency=1"]


def _corpus(directory: Path, files: int = 3, repeat: int = 40) -> Path:
    """Text files of distinct numbered paragraphs."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        docs = [f"{PARAGRAPHS[i % len(PARAGRAPHS)]} ({f}-{i})" for i in range(repeat * 5)]
        (directory / f"part{f}.txt").write_text("\n\n".join(docs) + "\n")
    return directory


def _args(corpus: Path, *extra: str) -> list[str]:
    return [
        "data=text_files",
        f"data.train_files=[{corpus}/*.txt]",
        "objective=clm",
        "model=gpt2-tiny",
        *TOKENIZER,
        *extra,
    ]


def _complete(prepared: Path) -> set[str]:
    # a shard killed between its meta.json and its rename is still scratch (a dot name)
    return {p.parent.name for p in prepared.glob("[!.]*/meta.json")}


def _shards(directory: Path) -> dict[str, bytes]:
    return {
        f"{shard.name}/{f.name}": f.read_bytes()
        for shard in sorted(directory.iterdir())
        if not shard.name.startswith(".")
        for f in sorted(shard.iterdir())
    }


def test_prepare_says_where_and_pretrain_uses_it_as_it_is(tmp_path, cache_dir):
    corpus = _corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    result = run_cli(["prepare", *_args(corpus), f"hydra.run.dir={tmp_path / 'p'}"], cache)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    directory = Path(summary["directory"])
    assert f"prepared: {directory}" in result.stdout
    assert summary["shards"] == summary["shards_prepared"] == 3
    assert summary["train_documents"] + summary["validation_documents"] == 600
    assert summary["train_tokens"] > 10 * summary["validation_tokens"] > 0
    before = _shards(directory)
    args = _args(corpus, "trainer.max_steps=2", "trainer.block_size=32")
    result = run_cli(["pretrain", *args, f"hydra.run.dir={tmp_path / 't'}"], cache)
    assert result.returncode == 0, result.stderr
    assert "prepared" not in result.stdout  # nothing left to prepare
    assert f"data           {summary['train_documents']:,} documents," in result.stdout
    assert _shards(directory) == before


def test_a_killed_preparation_resumes_where_it_stopped(tmp_path):
    corpus = _corpus(tmp_path / "corpus", files=2, repeat=800)  # ~1 MB each
    args = _args(corpus, "data.shard_mb=0.05", "data.num_proc=1")
    cache = tmp_path / "cache"
    command = [
        sys.executable,
        "-m",
        "llmtrain",
        "prepare",
        *args,
        f"hydra.run.dir={tmp_path / 'a'}",
    ]
    process = subprocess.Popen(
        command, env=cli_env(cache), start_new_session=True, stdout=subprocess.DEVNULL
    )
    prepared = cache / "prepared"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if len(_complete(prepared)) >= 3:
            break
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = _complete(prepared)
    summary = cli_summary(["prepare", *args], tmp_path / "b", cache)
    assert 3 <= len(done) < summary["shards"], "the kill came too late to test anything"
    assert summary["shards_reused"] == len(done)
    assert summary["shards_prepared"] == summary["shards"] - len(done)
    assert not list(prepared.glob(".*")), "the killed run's scratch is left behind"
    clean = tmp_path / "clean"
    cli_summary(["prepare", *args], tmp_path / "c", clean)
    assert _shards(prepared) == _shards(clean / "prepared")


def test_shares_of_an_array_add_up_to_the_whole(tmp_path):
    corpus = _corpus(tmp_path / "corpus", files=4)
    cache = tmp_path / "cache"
    first = cli_summary(
        ["prepare", *_args(corpus, "data.prepare_shard=0/2")], tmp_path / "a", cache
    )
    assert (first["shards"], first["shards_prepared"], first["shards_complete"]) == (4, 2, 2)
    assert "train_tokens" not in first  # not the whole corpus yet
    second = cli_summary(
        ["prepare", *_args(corpus, "data.prepare_shard=1/2")], tmp_path / "b", cache
    )
    # the share that completes the corpus reads it whole, as any later run does
    assert (second["shards_prepared"], second["shards_complete"]) == (2, 4)
    assert second["train_tokens"] > 0 and second["shards_reused"] == 2


@pytest.mark.parametrize(
    ("write", "extra", "message"),
    [
        (
            lambda d: (d / "a.jsonl").write_text('{"text": "fine"}\n{"body": "no text"}\n'),
            [],
            "{d}/a.jsonl:2: no field 'text' (data.text_field); fields: body",
        ),
        (lambda d: (d / "a.txt").write_text("x"), ["data.prepare_shard=2/2"], None),
        (lambda d: None, [], "data.train_files: no file matches {d}/*.jsonl"),
    ],
    ids=["missing-field", "bad-share", "no-match"],
)
def test_bad_input_is_one_line(tmp_path, write, extra, message):
    write(tmp_path)
    pattern = "*.txt" if extra else "*.jsonl"
    args = ["data=text_files", f"data.train_files=[{tmp_path}/{pattern}]", *TOKENIZER, *extra]
    result = run_cli(["prepare", *args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path / "cache")
    assert result.returncode == 2
    expected = message or "data.prepare_shard=2/2: give I/N with 0 <= I < N, e.g. 0/4"
    assert result.stderr.strip().splitlines() == [
        f"llmtrain prepare: error: {expected.format(d=tmp_path)}"
    ]
