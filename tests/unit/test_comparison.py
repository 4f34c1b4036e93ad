"""llmtrain.comparison: run statuses, plot legends and their labels,
one directory given two ways."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY
from report_fixtures import fake_run, held, run_statuses

from llmtrain import comparison
from llmtrain.comparison import find_runs


def test_report_status_of_a_finished_run_trained_further(tmp_path):
    """A finished run given more steps continues in its directory: the summary of the shorter
    run stays until the longer one finishes, and what happened since is what counts."""
    done = {"loss": 2.0, "steps": 10, "last_eval_finite": True}
    fake_run(tmp_path / "again", [10, 20], summary=done)
    fake_run(tmp_path / "stopped", [10, 20], summary=done, status={"status": "stopped", "step": 20})
    fake_run(tmp_path / "at-once", [10], summary=done, status={"status": "failed", "step": 10})
    diverged = {"steps": 10, "last_eval_finite": False}
    fake_run(
        tmp_path / "diverged", [10], summary=diverged, status={"status": "stopped", "step": 10}
    )
    fake_run(tmp_path / "running", [10], summary=done)
    with held(tmp_path / "running"):
        statuses = run_statuses(tmp_path)
    assert statuses == {
        "again": "interrupted (step 20)",
        "stopped": "stopped (step 20)",
        "at-once": "failed (step 10)",
        "diverged": "stopped (step 10)",
        "running": "running (step 10)",
    }
    (again,) = (r for r in find_runs([str(tmp_path)]) if r.label == "again")
    assert again.value is None  # not the shorter run's loss


def _plotted_labels(runs, out: Path, monkeypatch) -> list[list[str]]:
    """The legend labels of each axes `plot` draws."""
    seen: list[list[str]] = []
    save = comparison._save

    def record(fig, path):
        seen.extend(ax.get_legend_handles_labels()[1] for ax in fig.axes)
        return save(fig, path)

    monkeypatch.setattr(comparison, "_save", record)
    comparison.plot(runs, out)
    return seen


def test_plot_legends_are_unique_and_show_what_differs(tmp_path, monkeypatch):
    name = "gpt2-small-openwebtext-lr3e-4-warmup2000-cosine-bs512-dropout0.1-seed"
    shards = "data.train_file=/data/corpora/openwebtext/shards/2026-11-26/part-"
    for i in (1, 2):
        fake_run(tmp_path / f"{name}{i}", [5, 10], (f"{shards}{i}.txt", f"trainer.seed={i}"))
    runs = find_runs([str(tmp_path)])
    for labels in _plotted_labels(runs, tmp_path, monkeypatch)[:1]:  # train loss
        assert len(set(labels)) == len(labels) == 2
        for i, label in zip((1, 2), labels, strict=True):
            assert label.startswith(f"{name}{i} ")  # the run, as the table names it
            assert label.endswith(f" train_file=…/part-{i}.txt seed={i}")


def test_legend_labels_shorten_the_overrides(tmp_path):
    fake_run(tmp_path / "0", [5], ("trainer.lr=0.001", "model.hidden_size=64", "optimizer.lr=1"))
    fake_run(tmp_path / "1", [5], ("trainer.lr=0.0003", "model.hidden_size=128", "optimizer.lr=1"))
    fake_run(tmp_path / "2", [5], ("trainer.lr=0.0003", "model.hidden_size=64", "+trainer.x.y=z"))
    runs = find_runs([str(tmp_path)])
    # keys by their last part where that names one setting (two settings end in .lr)
    assert comparison.legend_labels(runs) == [
        "0 trainer.lr=0.001 hidden_size=64 optimizer.lr=1",
        "1 trainer.lr=0.0003 hidden_size=128 optimizer.lr=1",
        "2 trainer.lr=0.0003 hidden_size=64 +y=z",
    ]


def test_legend_labels_stay_short_where_many_overrides_differ(tmp_path):
    tiny = [o.replace("=", "=1") for o in TINY]  # a dozen overrides, none common
    fake_run(tmp_path / "a", [5], ("trainer.seed=1", *tiny))
    fake_run(tmp_path / "b", [5], ("trainer.seed=2",))
    a, b = comparison.legend_labels(find_runs([str(tmp_path)]))
    assert a == "a seed=1 vocab_size=12000 hidden_size=164 …"  # whole overrides, 60 chars
    assert b == "b seed=2"
    (run,) = find_runs([str(tmp_path / "a")])  # one run: all its overrides are shown
    assert comparison.legend_labels([run]) == [a]


def test_report_of_one_directory_given_two_ways(tmp_path, monkeypatch):
    fake_run(tmp_path / "runs" / "a", [5])
    fake_run(tmp_path / "runs" / "b", [5])
    monkeypatch.chdir(tmp_path)
    runs = find_runs(["runs", str(tmp_path / "runs"), "runs/../runs/a"])
    assert sorted(r.label for r in runs) == ["a", "b"]
