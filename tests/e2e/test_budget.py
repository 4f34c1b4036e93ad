"""trainer.budget through the CLI: a run sized to a wall-clock budget ends inside it, with its
final model and a schedule that decays to zero at the last step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import TINY, read_metrics, run_cli


def _corpus(path: Path) -> Path:
    """A small made-up corpus: tokenising it costs nothing next to the budget."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(words, size=rng.integers(20, 200))) for _ in range(400)]
    path.write_text("\n\n".join(docs) + "\n")
    return path


def test_a_budget_run_ends_inside_its_budget_with_a_final_model(cache_dir, tmp_path):
    run = tmp_path / "run"
    corpus = _corpus(tmp_path / "corpus.txt")
    args = [a for a in TINY if not a.startswith("trainer.max_steps")]
    result = run_cli(
        [
            "pretrain",
            "objective=clm",
            "model=gpt2-tiny",
            "data=text_files",
            f"data.train_files=[{corpus}]",
            *args,
            "tokenizer.vocab_size=400",
            "trainer.batch_size=4",
            "trainer.block_size=32",
            "trainer.eval_batches=2",
            "trainer.log_every=1",
            "trainer.budget=20s",
            f"hydra.run.dir={run}",
        ],
        cache_dir,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["budget_seconds"] == 20
    assert summary["budget_used_seconds"] <= 20
    steps = summary["steps"]
    assert summary["budget_steps"] == steps >= 3
    assert (run / "final" / "model.safetensors").is_file()
    assert (run / "checkpoints" / f"step-{steps}" / "COMPLETE").is_file()
    rows = read_metrics(run)
    train = [r for r in rows if r["split"] == "train"]
    assert train[-1]["step"] == steps and train[-1]["lr"] == 0.0  # decayed to the planned end
    assert max(r["lr"] for r in train) > 0.5 * 3e-3  # and warmed up to near the peak first
    assert rows[-1] == {**rows[-1], "split": "eval", "step": steps}
