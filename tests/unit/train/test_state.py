"""TrainState as checkpoints hold it: a run checkpointed by an older llmtrain (a flat
"position") resumes exactly."""

from __future__ import annotations

import json
import shutil

from conftest import fit_tiny, tiny_gpt2

from llmtrain.objectives.causal import CausalLM
from llmtrain.train.checkpoint import MARKER, _digest


def _as_position(state: dict) -> dict:
    """trainer_state.json's "state" as llmtrain wrote it before TrainState: one flat dict."""
    progress, best, budget, window = (state[k] for k in ("progress", "best", "budget", "window"))
    return {
        **progress,
        "best": best["value"],
        "best_step": best["step"],
        "evals_since_best": best["evals_since"],
        "planned_steps": budget["planned_steps"],
        "budget_used": budget["used_seconds"],
        "eval_seconds": budget["eval_seconds"],
        "save_seconds": budget["save_seconds"],
        "window": [window["loss_sum"], window["targets"], window["tokens"], window["seconds"]],
        "window_parts": window["parts"],
    }


def _train_losses(run) -> list[float]:
    rows = [json.loads(x) for x in run.metrics.read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def test_a_checkpoint_written_before_train_state_resumes_exactly(tmp_path):
    # Steps logged every 3 (not every step): the window in progress at step 4 must survive too.
    reference, _, _ = fit_tiny(tmp_path / "reference", CausalLM(), tiny_gpt2(), log_every=3)
    run, _, _ = fit_tiny(tmp_path / "old", CausalLM(), tiny_gpt2(), log_every=3)
    checkpoint, last = run.list_checkpoints()  # steps 4 and 8: resume from 4, as if killed at 7
    shutil.rmtree(last)
    saved = json.loads((checkpoint / "trainer_state.json").read_text())
    saved["position"] = _as_position(saved.pop("state"))
    (checkpoint / "trainer_state.json").write_text(json.dumps(saved))
    manifest = json.loads((checkpoint / MARKER).read_text())
    manifest["trainer_state.json"] = _digest(checkpoint / "trainer_state.json")
    (checkpoint / MARKER).write_text(json.dumps(manifest))

    resumed, _, result = fit_tiny(tmp_path / "old", CausalLM(), tiny_gpt2(), log_every=3)
    assert result.steps == 8
    assert _train_losses(resumed) == _train_losses(reference)
