"""`llmtrain tokenizer train`: the same text and settings give the same tokenizer, every build,
and it is the tokenizer pretrain trains."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import TINY, run_cli
from transformers import AutoTokenizer

# ../shared/data next to the repository (which CI and the development checkout have).
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


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


def test_tokenizer_train_saves_the_tokenizer_pretrain_trains(mlm_run, cache_dir, tmp_path):
    settings = [a for a in TINY if a.startswith("tokenizer.")]
    run_dir = tmp_path / "tok"
    result = run_cli(["tokenizer", "train", *settings, f"hydra.run.dir={run_dir}"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert f"tokenizer: {run_dir / 'tokenizer'}" in result.stdout
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    pretrained = AutoTokenizer.from_pretrained(mlm_run / "final")
    assert len(tokenizer) == 2000 and tokenizer.get_vocab() == pretrained.get_vocab()
    ids = tokenizer("Return the list.")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "return the list."
    assert torch.tensor(ids)[0].item() == tokenizer.cls_token_id
