"""`llmtrain fill-mask RUN_DIR text="… [MASK] …"`: an MLM run's final/ model's top-k guesses
for each masked word, and the text with the best guesses filled in."""

from __future__ import annotations

import torch

from llmtrain import models
from llmtrain.commands import one_run_dir, parse_plain
from llmtrain.config import FillMaskConfig, ObjectiveName
from llmtrain.console import quiet_libraries
from llmtrain.data.tokenizer import load_tokenizer
from llmtrain.errors import ConfigError


def main(argv: list[str]) -> None:
    paths, cfg = parse_plain(argv, FillMaskConfig)
    if cfg.top_k <= 0:
        raise ConfigError(f"top_k={cfg.top_k} must be positive")
    quiet_libraries()
    model, path = models.run_model(one_run_dir(paths, "fill-mask"), ObjectiveName.mlm)
    tokenizer = load_tokenizer(path)
    mask = tokenizer.mask_token
    text = cfg.text.replace("[MASK]", mask)
    if mask not in text:
        raise ConfigError(f'text has no {mask} to fill: e.g. text="return the {mask} of a list"')
    for line in predict(model, tokenizer, text, cfg.top_k):
        print(line, flush=True)


def predict(model, tokenizer, text: str, top_k: int) -> list[str]:
    """One line per mask (its top-k tokens and probabilities), then the text filled in."""
    encoded = tokenizer(text, return_tensors="pt", truncation=True)
    with torch.inference_mode():
        logits = model(**encoded).logits[0]
    positions = (encoded["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    ids = encoded["input_ids"][0].clone()
    lines = []
    for n, pos in enumerate(positions.tolist(), 1):
        probs, best = logits[pos].softmax(-1).topk(top_k)
        pairs = zip(probs.tolist(), best.tolist(), strict=True)
        guesses = [f"{tokenizer.decode([i]).strip()} {p:.3f}" for p, i in pairs]
        lines.append(f"mask {n}: " + " · ".join(guesses))
        ids[pos] = best[0]
    lines.append("filled: " + tokenizer.decode(ids, skip_special_tokens=True))
    return lines
