"""scripts/sst2_quality.sh, the script behind docs/benchmarks.md's SST-2 quality table, end to
end on a GLUE-layout fixture with a few steps: every start fine-tunes, the controlled fresh start
shares the pretraining's tokenizer, the summary prints the table and the seed-by-seed
difference, and a fine-tune that fails is named and fails the script instead of dropping out of
the table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, cli_env
from glue_fixtures import write_glue


@pytest.mark.slow  # a benchmark script's plumbing, 9 runs: about a minute on 2 cores
def test_quality_script_compares_starts_with_one_tokenizer(tmp_path, cache_dir):
    sst2 = write_glue(tmp_path / "glue", only=("sst2",)) / "sst2"
    prose = tmp_path / "prose.txt"
    prose.write_text("\n\n".join(f"A play in {i} acts, and a good one." for i in range(50)) + "\n")
    out = tmp_path / "quality"
    script = ["bash", str(REPO / "scripts" / "sst2_quality.sh"), str(sst2), str(out)]
    env = {
        **cli_env(cache_dir),
        "PY": sys.executable,
        "SHAKESPEARE": str(prose),
        "PRE_STEPS": "10",
        "SEEDS": "1",
        "LRS": "1e-3",
    }

    # The script's 300 warm-up steps outlast a fine-tune of 48 rows: each failure is named.
    result = subprocess.run(script, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    for start in ("fresh", "fresh-tasktok", "pretrained"):
        assert f"fine-tune {start}-s1-lr1e-3 failed: " in result.stderr
    assert "trainer.warmup_steps=300" in result.stderr

    env["FT_ARGS"] = "trainer.warmup_steps=0"  # the pretraining is reused, the fine-tunes run
    result = subprocess.run(script, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    lines = result.stdout.splitlines()
    for start in ("fresh", "fresh-tasktok", "pretrained"):
        assert any(line.startswith(f"| {start} | 1e-3 | 1 | ") for line in lines), result.stdout
    assert any(line.startswith("lr 1e-3, pretrained − fresh by seed: ") for line in lines)
    assert json.loads((out / "pretrain" / "summary.json").read_text())["steps"] == 10

    def vocab(run: str) -> dict:
        return json.loads((out / run / "final" / "tokenizer.json").read_text())["model"]["vocab"]

    assert vocab("fresh-s1-lr1e-3") == vocab("pretrain")  # the controlled comparison
    assert vocab("fresh-tasktok-s1-lr1e-3") != vocab("pretrain")
