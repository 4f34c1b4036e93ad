"""One optimizer step: forward and backward over the step's micro-batches, then the update.

Gradient accumulation is token-exact: every micro-batch backpropagates the *sum* of its token
losses times 1 / (targets over all the step's micro-batches and processes), so the gradient is
the mean over every target, not a mean of means. One value per step is read back to the host
(is the gradient finite, does it need clipping); losses stay on the device as sums.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate import Accelerator

from llmtrain.train.contract import Objective


def optimizer_step(
    module: torch.nn.Module,
    micro: list[dict[str, torch.Tensor]],
    objective: Objective,
    accelerator: Accelerator,
    optimizer: torch.optim.Optimizer,
    max_grad_norm: float,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Train on the micro-batches `micro` and update, unless the loss or the gradient is not
    finite (the update is then skipped). Returns the step's sums (loss sum, targets, tokens,
    then the objective's own `n_parts`), the gradient norm before clipping, and whether the
    update was applied."""
    world = accelerator.num_processes
    sums = torch.zeros(3 + objective.n_parts, dtype=torch.float64, device=accelerator.device)
    # Targets over all micro-batches and processes, known before any forward: each sum is
    # scaled once, before backward (DDP averages over processes: x world).
    count = torch.stack([objective.targets(b) for b in micro]).sum().double()
    if world > 1:
        count = accelerator.reduce(count.to(accelerator.device), "sum")
    scale = world / count.clamp(min=1)
    for k, batch in enumerate(micro):
        last = k == len(micro) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(module):
            loss_sum, n, *parts = module(batch)
            accelerator.backward(loss_sum * scale.to(loss_sum))
        mask = batch.get("attention_mask")
        tokens = mask.sum() if mask is not None else batch["input_ids"].numel()
        counts = [loss_sum.detach().double(), n.double(), torch.as_tensor(tokens).to(sums)]
        sums += torch.cat([torch.stack(counts), *(p.to(sums) for p in parts)])
    accelerator.unscale_gradients()  # fp16: back to true scale (else a no-op)
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.get_total_norm(grads)
    if hasattr(grad_norm, "full_tensor"):  # FSDP: a sharded norm, made whole
        grad_norm = grad_norm.full_tensor()
    finite = bool(torch.isfinite(grad_norm) & torch.isfinite(sums[0]))
    if accelerator.scaler is not None:  # fp16: the scaler skips overflows itself
        finite = True
    if finite:  # a non-finite loss or gradient skips the update, data moves on
        if max_grad_norm and grad_norm > max_grad_norm:  # the host has synced already
            torch.nn.utils.clip_grads_with_norm_(module.parameters(), max_grad_norm, grad_norm)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return sums, grad_norm, finite
