"""Text from a causal LM: evaluation samples from validation prompts."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain.config import TaskConfig
from llmtrain.models import max_positions


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    cfg: TaskConfig,
    accelerator: Accelerator,
    seed: int,
) -> list[str]:
    """One continuation per prompt (token ids), greedy or sampled as task.do_sample says, up to
    task.max_new_tokens or the end-of-sequence token; decoded without special tokens.

    Sampling draws from a generator seeded by `seed` on a forked RNG, so every evaluation (and
    every process) samples the same way and training's random state is left as it was.
    """
    was_training = model.training
    model.eval()
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.do_sample else {}
    texts = []
    cuda = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad(), accelerator.autocast():
        torch.manual_seed(seed)
        for ids in prompts:
            room = min(cfg.max_new_tokens, max_positions(model) - len(ids))
            if room <= 0:  # the prompt fills the model's context: nothing can follow
                texts.append("")
                continue
            x = torch.tensor([ids], device=accelerator.device)
            out = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=room,
                do_sample=cfg.do_sample,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id
                if tokenizer.pad_token_id is not None
                else tokenizer.eos_token_id,
                **sampling,
            )
            texts.append(tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))
    model.train(was_training)
    return texts
