"""Text from a causal LM: the one generation function, for `llmtrain generate` and for the
samples SFT evaluations write."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmtrain.data.packing import pad_id
from llmtrain.models import max_positions


@dataclass(frozen=True)
class Decoding:
    """How to continue a prompt: greedy at temperature 0, else sampled; top_k and top_p of None
    leave the model's own generation settings."""

    max_new_tokens: int
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def settings(self) -> dict[str, float | int | bool]:
        if self.temperature <= 0:
            return {"do_sample": False}
        given = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}
        return {"do_sample": True, **{k: v for k, v in given.items() if v is not None}}


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    decoding: Decoding,
    seed: int,
    num_samples: int = 1,
    accelerator: Accelerator | None = None,
) -> list[torch.Tensor]:
    """Per prompt (token ids), `num_samples` rows of the prompt and its continuation, up to
    `max_new_tokens`, the model's last position or the end-of-sequence token (a prompt that
    fills the model's context gets none); on `accelerator`'s device in its precision, else
    where the model is.

    Sampling draws from a generator seeded by `seed` on a forked RNG, so every call (and every
    process) samples the same way and the caller's random state is left as it was.
    """
    device = accelerator.device if accelerator else model.device
    autocast = accelerator.autocast() if accelerator else nullcontext()
    was_training = model.training
    model.eval()
    out = []
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad(), autocast:
        torch.manual_seed(seed)
        for ids in prompts:
            x = torch.tensor([ids], device=device)
            room = min(decoding.max_new_tokens, max_positions(model) - len(ids))
            if room <= 0:  # nothing can follow
                out.append(x.repeat(num_samples, 1))
                continue
            out.append(
                model.generate(
                    x,
                    attention_mask=torch.ones_like(x),
                    max_new_tokens=room,
                    num_return_sequences=num_samples,
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=pad_id(tokenizer),
                    **decoding.settings(),
                )
            )
    model.train(was_training)
    return out
