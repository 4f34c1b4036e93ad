"""`llmtrain generate RUN_DIR prompt="…"`: continue a prompt with a CLM run's final/ model
(sampling with temperature, top-k and top-p, or greedy with temperature=0)."""

from __future__ import annotations

import torch

from llmtrain import models
from llmtrain.commands import one_run_dir, parse_plain
from llmtrain.config import GenerateConfig, ObjectiveName
from llmtrain.console import quiet_libraries
from llmtrain.data.tokenizer import load_tokenizer
from llmtrain.decoding import Decoding, generate
from llmtrain.errors import ConfigError


def main(argv: list[str]) -> None:
    paths, cfg = parse_plain(argv, GenerateConfig)
    _check(cfg)
    quiet_libraries()
    model, path = models.run_model(one_run_dir(paths, "generate"), ObjectiveName.clm)
    tokenizer = load_tokenizer(path)
    ids = tokenizer(cfg.prompt, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:  # an empty prompt starts a new text
        ids = torch.tensor([[tokenizer.bos_token_id]])
    positions = models.max_positions(model)
    if ids.shape[1] + cfg.max_new_tokens > positions:
        raise ConfigError(
            f"the prompt ({ids.shape[1]} tokens) and max_new_tokens={cfg.max_new_tokens} "
            f"exceed the model's {positions} positions"
        )
    decoding = Decoding(cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p)
    [out] = generate(model, tokenizer, ids.tolist(), decoding, cfg.seed, cfg.num_samples)
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    print("\n---\n".join(texts), flush=True)


def _check(cfg: GenerateConfig) -> None:
    if cfg.max_new_tokens <= 0:
        raise ConfigError(f"max_new_tokens={cfg.max_new_tokens} must be positive")
    if cfg.temperature < 0:
        raise ConfigError(f"temperature={cfg.temperature} must not be negative")
    if cfg.top_k < 0:
        raise ConfigError(f"top_k={cfg.top_k} must not be negative")
    if not 0 < cfg.top_p <= 1:
        raise ConfigError(f"top_p={cfg.top_p} must be in (0, 1]")
    if cfg.num_samples <= 0:
        raise ConfigError(f"num_samples={cfg.num_samples} must be positive")
