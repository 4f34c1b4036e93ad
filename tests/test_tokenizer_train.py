"""Training a tokenizer: the same text and settings give the same tokenizer, every build."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

# ../shared/data next to the repository (which CI and the development checkout have).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_the_same_text_trains_the_same_wordpiece_tokenizer(tmp_path):
    """Three builds from fresh caches (the WordPiece trainer used to number its pieces in
    hash-map order: 2,148, 2,147 and 2,146 tokens from three builds)."""
    text = SHARED / "data" / "tinyshakespeare" / "input.txt"
    vocabularies = []
    for build in range(3):
        run = tmp_path / f"run{build}"
        result = run_cli(
            [
                "tokenizer",
                "train",
                "data=text_files",
                f"data.train_files=[{text}]",
                "tokenizer.kind=wordpiece",
                "tokenizer.vocab_size=3000",
                f"hydra.run.dir={run}",
            ],
            tmp_path / f"cache{build}",
        )
        assert result.returncode == 0, result.stderr
        saved = json.loads((run / "tokenizer" / "tokenizer.json").read_text())
        vocabularies.append(saved["model"]["vocab"])
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]
    assert len(vocabularies[0]) == 3000
