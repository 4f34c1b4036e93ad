"""Language-model objectives: each turns examples into a batch and a batch into a loss, as the
loop's contract says (llmtrain.train.contract).

    masked.py      MLM, and MLM + NSP/SOP on sentence pairs (BERT)
    causal.py      CLM (GPT-2), and SFT's loss on responses only
    inputs.py      a packed batch's model inputs (block-diagonal attention)
    vocab_loss.py  the vocabulary head's cross-entropy in row chunks, its gradient fused in
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from llmtrain.config import ObjectiveConfig, ObjectiveName, Packing
from llmtrain.errors import ConfigError
from llmtrain.objectives.causal import CausalLM
from llmtrain.objectives.masked import MaskedLM, MaskedLMWithPairs
from llmtrain.train.contract import Objective

PAIRED = (ObjectiveName.mlm_nsp, ObjectiveName.mlm_sop)  # the objectives on sentence pairs


def check_config(cfg: ObjectiveConfig, block_size: int, packing: Packing) -> None:
    """What the objective's settings alone show cannot work (before any data work)."""
    probabilities = ["mask_replace_prob", "random_replace_prob", "short_seq_prob"]
    for key in probabilities:
        if not 0 <= getattr(cfg, key) <= 1:
            raise ConfigError(f"objective.{key}={getattr(cfg, key)} must be between 0 and 1")
    if not 0 < cfg.mlm_probability <= 1:
        raise ConfigError(f"objective.mlm_probability={cfg.mlm_probability} must be in (0, 1]")
    if cfg.mask_replace_prob + cfg.random_replace_prob > 1:
        raise ConfigError("objective.mask_replace_prob + objective.random_replace_prob exceeds 1")
    if cfg.dupe_factor < 1:
        raise ConfigError(f"objective.dupe_factor={cfg.dupe_factor} must be positive")
    if cfg.whole_word_mask and cfg.name is ObjectiveName.clm:
        raise ConfigError("objective.whole_word_mask=true applies to masked objectives, not clm")
    if cfg.name in PAIRED:
        if block_size < 5:
            raise ConfigError(f"trainer.block_size={block_size} is too short for sentence pairs")
        if packing is not Packing.concat:
            raise ConfigError(
                f"data.packing={packing.value}: objective={cfg.name.value} makes sentence pairs, "
                "one a row, never packed"
            )


def build_objective(
    cfg: ObjectiveConfig,
    tokenizer: PreTrainedTokenizerBase,
    tokens_per_pair: float | None = None,
) -> Objective:
    """The configured objective; the pair objectives need the training pairs' mean number of
    tokens (special tokens excluded), which sets the weight of their pair loss."""
    if cfg.name in PAIRED:
        if tokens_per_pair is None:
            raise ConfigError(f"objective={cfg.name.value} runs on sentence pairs: use pretrain")
        return MaskedLMWithPairs(cfg, tokenizer, tokens_per_pair)
    if cfg.name is ObjectiveName.mlm:
        return MaskedLM(cfg, tokenizer)
    return CausalLM()
