"""`llmtrain tokenizer train`: it saves the tokenizer pretrain trains on the same settings (the
same text trains the same tokenizer every build: tests/unit/data/test_tokenizer.py)."""

from __future__ import annotations

import torch
from conftest import TINY, run_cli
from transformers import AutoTokenizer


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
