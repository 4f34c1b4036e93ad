"""User mistakes end in one line that names the problem and a non-zero exit."""

from __future__ import annotations

import pytest
from conftest import run_cli


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["trainer.lrr=1e-3"], "trainer.lrr"),
        (["trainer.lr=fast"], "trainer.lr"),
        (["model=bert-huge"], "bert-huge"),
        (["data=text_files", "data.train_files=[/no/such/corpus.txt]"], "/no/such/corpus.txt"),
        (["data=text_files"], "data.train_files"),
        (["objective=mlm", "model=gpt2-tiny"], "objective=mlm"),
        (["trainer.batch_size=0"], "trainer.batch_size"),
        (["trainer.block_size=1024"], "trainer.block_size"),
        (["-m", "--cfg", "job"], "--multirun"),
        (["trainer.budget=20min"], "trainer.budget"),
    ],
)
def test_mistake_gives_one_line(args, named, cache_dir, tmp_path):
    result = run_cli(["pretrain", *args, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_undecodable_text_names_file_and_line(cache_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a fine line\nthen \xff\xfe a broken one\n")
    result = run_cli(
        [
            "pretrain",
            "data=text_files",
            f"data.train_files=[{bad}]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cache_dir,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"llmtrain pretrain: error: {bad}:2: byte 17 is not UTF-8 (invalid start byte); "
        "data.decode_errors=replace reads such bytes as U+FFFD"
    ]


def test_unknown_command(cache_dir):
    result = run_cli(["pretrian"], cache_dir)
    assert result.returncode != 0 and "unknown command 'pretrian'" in result.stderr


def test_cfg_job_prints_the_composed_config(cache_dir):
    result = run_cli(["pretrain", "objective=clm", "model=gpt2-tiny", "--cfg", "job"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert "family: gpt2" in result.stdout and "name: clm" in result.stdout


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (
            ["--max_steps", "10"],
            "unknown flag --max_steps: set keys as key=value, e.g. trainer.max_steps=10",
        ),
        (["--max-steps=10"], "e.g. trainer.max_steps=10"),
        (["--trainer.lr", "1e-3"], "e.g. trainer.lr=1e-3"),
        (["--compile"], "e.g. trainer.compile=true"),
        (["--model", "gpt2-tiny"], "e.g. model=gpt2-tiny"),
        (["-x"], "-x: x is no key of llmtrain pretrain either (llmtrain pretrain --help"),
    ],
)
def test_a_flag_that_is_a_key_names_its_key_value_form(args, hint, cache_dir, tmp_path):
    result = run_cli(["pretrain", *args, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hint in lines[0], result.stderr


def test_hydra_flags_and_their_values_pass(cache_dir):
    result = run_cli(["pretrain", "--cfg", "job", "--package", "trainer", "--res"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert "lr: 0.0005" in result.stdout


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["trainer.lr=1e-3,3e-4"], "add -m (llmtrain pretrain -m trainer.lr=1e-3,3e-4)"),
        (["model=bert-tiny,gpt2-tiny"], "add -m (llmtrain pretrain -m model=bert-tiny,gpt2-tiny)"),
        (
            ["data=text_files", "data.train_files=a.txt,b.txt"],
            "for a list write data.train_files=[a.txt,b.txt]",
        ),
    ],
)
def test_several_values_without_multirun_name_the_forms_meant(args, hint, cache_dir, tmp_path):
    result = run_cli(["pretrain", *args, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hint in lines[0], result.stderr
    assert not (tmp_path / "run").exists()
