"""A batch of packed blocks as the model takes it.

Packed examples may carry `position_ids` (`data.packing=document`): positions restart at each
document, and attention is block-diagonal, so no token sees another document (`model_inputs`).
"""

from __future__ import annotations

import inspect

import torch


def stack(examples: list[dict]) -> dict[str, torch.Tensor]:
    """The examples' token columns as batch tensors."""
    keys = [k for k in ("input_ids", "position_ids", "attention_mask") if k in examples[0]]
    return {k: torch.stack([ex[k] for ex in examples]) for k in keys}


def model_inputs(model: torch.nn.Module, batch: dict[str, torch.Tensor], causal: bool) -> dict:
    """The model's inputs for a packed batch: with `position_ids`, also a block-diagonal
    attention mask (4D, which transformers' BERT and GPT-2 take as it is), so each token
    attends to its own document segment only (and, if `causal`, to earlier tokens only); with
    an `attention_mask` (padded documents), that mask."""
    inputs = {"input_ids": batch["input_ids"]}
    if "attention_mask" in batch:  # padded documents: the padding is masked
        return {**inputs, "attention_mask": batch["attention_mask"]}
    positions = batch.get("position_ids")
    if positions is None:
        return inputs
    segment = (positions == 0).cumsum(-1)
    allowed = segment[:, :, None] == segment[:, None, :]
    if causal:
        allowed &= torch.ones_like(allowed[0]).tril()
    if model.config._attn_implementation == "sdpa":
        mask = allowed[:, None]
    else:  # eager: added to the scores
        dtype = model.get_input_embeddings().weight.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
    return {**inputs, "position_ids": positions, "attention_mask": mask}


def takes_block_diagonal_attention(model: torch.nn.Module) -> bool:
    """Whether `model_inputs`' 4D mask and position ids work for this model: sdpa or eager
    attention (transformers passes a 4D mask to them as it is) and a position_ids argument."""
    attention = getattr(model.config, "_attn_implementation", None)
    parameters = inspect.signature(model.base_model.forward).parameters
    return attention in ("sdpa", "eager") and "position_ids" in parameters
