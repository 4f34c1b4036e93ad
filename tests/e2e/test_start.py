"""What a new user meets first: the README's command lines run with their defaults, a config
mistake is named before any data is read, and a failed start leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY, read_metrics, run_cli, without
from glue_fixtures import write_glue


@pytest.fixture()
def unreadable(tmp_path) -> Path:
    """A data file whose reading fails at once: any data work would report it."""
    bad = tmp_path / "corpus.txt"
    bad.write_bytes(b"\xff\xfe not text\n")
    return bad


def _one_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_pretrain_with_max_steps_takes_the_default_warmup(cache_dir, tmp_path):
    """The default warm-up is a share of the run, so a short run works as typed."""
    small = without(TINY, "trainer.max_steps", "trainer.log_every")  # TINY sets no warm-up
    result = run_cli(["pretrain", "trainer.max_steps=50", *small], cache_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "outputs" / "pretrain").glob("*/*")
    assert json.loads((run / "summary.json").read_text())["steps"] == 50
    rows = [r for r in read_metrics(run) if r["split"] == "train"]
    # 5 warm-up steps (a tenth), then linear decay from TINY's peak of 3e-3
    assert rows[0]["step"] == 20 and rows[0]["lr"] == pytest.approx(3e-3 * (50 - 20) / (50 - 5))


def test_finetune_takes_the_max_steps_given(mlm_run, cache_dir, tmp_path):
    """finetune's default epochs=3 gives way to a max_steps on the command line."""
    glue = write_glue(tmp_path / "glue", only=("sst2",))
    final = mlm_run / "final"  # a run's final/ is taken as the run
    args = ["finetune", "task=sst2", f"task.data_dir={glue / 'sst2'}", f"model.from_run={final}"]
    result = run_cli(
        [*args, "trainer.max_steps=30", f"hydra.run.dir={tmp_path / 'run'}"], cache_dir
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 30
    both = run_cli([*args, "trainer.max_steps=30", "trainer.epochs=2"], cache_dir, cwd=tmp_path)
    line = _one_line(both)
    assert "trainer.max_steps=30" in line and "trainer.epochs=2" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["trainer.max_steps=50", "trainer.warmup_steps=100"], "trainer.warmup_steps=100"),
        (["trainer.block_size=1024"], "512 positions"),
        (["model.dropout=1.5"], "model.dropout=1.5"),
        (  # an option combination (ranges of the objective's own: tests/unit/objectives)
            ["objective=clm", "model=gpt2-tiny", "objective.whole_word_mask=true"],
            "objective.whole_word_mask",
        ),
        (["model.name_or_path=/no/such/model"], "no such directory"),
    ],
)
def test_a_config_mistake_is_named_before_any_data_is_read(
    args, named, unreadable, cache_dir, tmp_path
):
    data = ["data=text_files", f"data.train_files=[{unreadable}]"]
    line = _one_line(run_cli(["pretrain", *data, *args], cache_dir, cwd=tmp_path))
    assert named in line and str(unreadable) not in line
    assert not (tmp_path / "outputs").exists()  # a failed start leaves nothing


def test_a_finetune_config_mistake_is_named_before_any_data_is_read(cache_dir, tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_bytes(b"text,label\n\xff,1\n")
    files = [f"task.train_file={bad}", f"task.validation_file={bad}"]
    result = run_cli(["finetune", "task=custom", *files, "model.dropout=1.5"], cache_dir, tmp_path)
    assert "model.dropout=1.5" in _one_line(result)
    assert not (tmp_path / "outputs").exists()


def test_the_readme_sweep_line_runs_as_printed(tiny_sweep):
    """`llmtrain pretrain -m trainer.lr=1e-3,3e-4` in its default sweep directory."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "llmtrain pretrain -m trainer.lr=1e-3,3e-4\n" in readme  # the line tiny_sweep runs
    assert tiny_sweep.parent.parent.name == "pretrain"
    for job in ("0", "1"):
        assert (tiny_sweep / job / "summary.json").is_file()
        assert (tiny_sweep / job / ".hydra" / "overrides.yaml").is_file()
    assert (tiny_sweep / "sweep.md").is_file()


@pytest.mark.parametrize("where", ["file", "under a file", "proc", "outputs is a file"])
def test_a_run_directory_that_cannot_be_made_is_one_line(where, cache_dir, tmp_path):
    (tmp_path / "file").write_text("not a directory\n")
    run_dir = {
        "file": tmp_path / "file",
        "under a file": tmp_path / "file" / "run",
        "proc": Path("/proc/llmtrain/run"),
    }.get(where)
    if run_dir is None:
        (tmp_path / "outputs").write_text("a file\n")
    args = ["pretrain", *([f"hydra.run.dir={run_dir}"] if run_dir else [])]
    line = _one_line(run_cli(args, cache_dir, cwd=tmp_path))
    assert "cannot create the run directory" in line
    if where != "proc":
        assert "is a file, not a directory" in line


def test_a_failed_start_leaves_nothing_and_a_run_logs_its_lines(mlm_run, cache_dir, tmp_path):
    result = run_cli(["pretrain", "trainer.lr=0"], cache_dir, cwd=tmp_path)
    assert "trainer.lr=0" in _one_line(result)
    assert list(tmp_path.iterdir()) == []
    log = (mlm_run / "run.log").read_text()
    assert "llmtrain pretrain" in log and "eval @ step 40" in log and "run directory" in log


def test_a_diverged_run_says_so_and_fails(cache_dir, tmp_path):
    run = tmp_path / "run"
    small = without(TINY, "trainer.max_steps", "trainer.lr")
    args = ["pretrain", *small, "trainer.max_steps=5", "trainer.lr=1e6", f"hydra.run.dir={run}"]
    result = run_cli(args, cache_dir)
    assert result.returncode == 1
    assert "not finite" in result.stderr and "skipped_steps" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["last_eval_finite"] is False and summary["skipped_steps"] > 0


def test_rerunning_a_finished_run_changes_nothing(mlm_run, cache_dir):
    before = {f: (mlm_run / f).read_bytes() for f in ("metrics.jsonl", "summary.json")}
    args = (mlm_run / ".hydra" / "overrides.yaml").read_text()
    overrides = [line[2:] for line in args.splitlines() if line.startswith("- ")]
    result = run_cli(["pretrain", *overrides, f"hydra.run.dir={mlm_run}"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert before == {f: (mlm_run / f).read_bytes() for f in before}


def test_header_prints_bracketed_values_on_a_terminal(cache_dir, tmp_path):
    """rich would read `[a.txt]` as markup and print nothing of it."""
    corpus = tmp_path / "a.txt"
    corpus.write_text("\n\n".join(f"line {i} of a small text about nothing" for i in range(600)))
    small = without(TINY, "trainer.max_steps", "tokenizer.vocab_size")
    args = ["pretrain", "data=text_files", f"data.train_files=[{corpus}]", *small]
    args += ["trainer.max_steps=1", "tokenizer.vocab_size=300"]
    result = run_cli(args, cache_dir, tmp_path, env={"FORCE_COLOR": "1", "COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    assert f"data.train_files=[{corpus}]" in result.stdout
