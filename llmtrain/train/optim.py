"""AdamW with weight decay kept off biases and norms, and the learning-rate schedule."""

from __future__ import annotations

import torch
from transformers import get_scheduler

from llmtrain.config import Schedule, TrainerConfig

_SCHEDULES = {
    Schedule.linear: "linear",
    Schedule.cosine: "cosine",
    Schedule.constant: "constant_with_warmup",
}


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


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    return get_scheduler(
        _SCHEDULES[cfg.schedule],
        optimizer,
        num_warmup_steps=cfg.warmup_steps,
        num_training_steps=total_steps,
    )
