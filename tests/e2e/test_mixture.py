"""`llmtrain pretrain data=mixture`: the realised token shares follow the weights, evaluation
reports each source's loss, and a resumed run draws exactly what the uninterrupted run drew."""

from __future__ import annotations

from pathlib import Path

from conftest import CLM_SMALL, PARAGRAPHS, cli_summary, run_cli

from llmtrain.rundir import read_metrics

SMALL = [
    "pretrain",
    *CLM_SMALL,
    "trainer.log_every=10",
    "trainer.eval_batches=2",
    "data.validation_fraction=0.1",
]


def _sources(tmp_path: Path) -> list[str]:
    """Two sources of different sizes: `web` (large, 70 %) and `code` (small, 30 %)."""
    for name, repeat in (("web", 60), ("code", 16)):
        folder = tmp_path / name
        folder.mkdir()
        docs = [f"{PARAGRAPHS[i % len(PARAGRAPHS)]} {name} {i}" for i in range(repeat * 5)]
        (folder / "a.txt").write_text("\n\n".join(docs) + "\n")
    return [
        "data=mixture",
        f"+data.sources.web.files=[{tmp_path / 'web'}]",
        "+data.sources.web.weight=0.7",
        f"+data.sources.code.files=[{tmp_path / 'code'}/*.txt]",
        "+data.sources.code.weight=0.3",
    ]


def _train_rows(run: Path) -> list[dict]:
    return [r for r in read_metrics(run) if r["split"] == "train"]


def test_a_mixture_follows_its_weights_and_resumes_exactly(tmp_path, cache_dir):
    args = [*SMALL, *_sources(tmp_path)]
    whole = cli_summary([*args, "trainer.max_steps=200"], tmp_path / "whole", cache_dir)
    rows = _train_rows(tmp_path / "whole")
    web = sum(r["tokens_web"] for r in rows)
    assert abs(web / sum(r["tokens_web"] + r["tokens_code"] for r in rows) - 0.7) <= 0.02
    assert whole["source_passes"]["code"] > whole["source_passes"]["web"]  # the small one, again
    evals = [r for r in read_metrics(tmp_path / "whole") if r["split"] == "eval"]
    assert {"loss", "validation_web_loss", "validation_code_loss"} <= set(evals[-1])
    assert "tokens_web" not in evals[-1]

    run = tmp_path / "resumed"
    cli_summary([*args, "trainer.max_steps=100"], run, cache_dir)
    result = run_cli([*args, "trainer.max_steps=200", f"hydra.run.dir={run}"], cache_dir)
    assert result.returncode == 0 and "resuming from" in result.stdout, result.stderr
    later = [r for r in _train_rows(run) if r["step"] > 100]
    expected = [r for r in rows if r["step"] > 100]
    assert [(r["tokens_web"], r["tokens_code"]) for r in later] == [
        (r["tokens_web"], r["tokens_code"]) for r in expected
    ]
    assert [round(r["loss"], 4) for r in later] == [round(r["loss"], 4) for r in expected]
