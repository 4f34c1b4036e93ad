"""AdamW with weight decay kept off biases and norms, and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llmtrain.config import Schedule, TrainerConfig


def build_optimizer(
    model: torch.nn.Module, cfg: TrainerConfig, device_type: str
) -> torch.optim.AdamW:
    """Matrices decay; vectors (biases, LayerNorm weights) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=device_type == "cuda" or None)


@dataclass
class Horizon:
    """The steps the schedule spans (a budget run moves them as it re-plans; the schedule reads
    them at every step) and its warm-up: `warmup_steps`, or else `warmup_ratio` of them."""

    steps: int
    warmup_steps: int | None
    warmup_ratio: float = 0.1

    @property
    def warmup(self) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return round(self.warmup_ratio * self.steps)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, horizon: Horizon
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then linear or cosine decay to 0 at `horizon.steps`, or constant
    (transformers' get_scheduler formulas, over a horizon that may move)."""

    def factor(step: int) -> float:
        if step < horizon.warmup:
            return step / max(1, horizon.warmup)
        if cfg.schedule is Schedule.constant:
            return 1.0
        remaining = max(1, horizon.steps - horizon.warmup)
        if cfg.schedule is Schedule.linear:
            return max(0.0, (horizon.steps - step) / remaining)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (step - horizon.warmup) / remaining)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
