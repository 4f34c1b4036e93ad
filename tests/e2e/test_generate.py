"""`llmtrain generate` on a directory that is not a run: one line."""

from __future__ import annotations

from conftest import run_cli


def test_not_a_run_directory_is_one_line(tmp_path, cache_dir):
    result = run_cli(["generate", str(tmp_path), "prompt=hello"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llmtrain generate: error: {tmp_path} is not a finished llmtrain run: "
        f"no model in {tmp_path / 'final'}"
    ]
