"""Training objectives: each turns examples into a batch and a batch into a loss.

The contract the loop relies on:
- `collate(examples) -> batch`: tensors on the CPU;
- `targets(batch) -> n_targets`: how many targets the batch has, known before any forward;
- `loss(model, batch) -> (loss_sum, n_targets)`: the *sum* of per-target losses and their count.
Objectives that make predictions (task heads) also have, for evaluation:
- `predict(model, batch) -> (loss_sum, n_targets, predictions)`: one prediction per example,
  matched to the batch's `index` and `labels` as rows (index, prediction, reference);
- `score(split, rows) -> (metrics, predictions)`: a split's metrics from all its rows, and the
  predictions as the task writes them.
The loop scales each micro-batch's sum by 1 / (targets over all micro-batches and processes)
before backward, which makes gradient accumulation and multi-process training token-exact.

Packed examples may carry `position_ids` (`data.packing=document`): positions restart at each
document, and attention is block-diagonal, so no token sees another document (`model_inputs`).
An objective with more to report than one loss (MLM + NSP) sets `n_parts` and returns a third
value from `loss`: a 1-D tensor of `n_parts` sums (e.g. each term's loss sum and count). The
loop and evaluation add these up like the loss (over micro-batches, the logging window and
processes) and log `report(totals) -> {name: value}` beside `loss`; such an objective reports
its own perplexity, if it has one.

Examples may carry a `sample_seed` (the loop sets one per (epoch, example)); the MLM objective
draws that example's mask from it, so masks do not depend on batching, workers, ranks or where
a run resumed.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from llmtrain.config import ObjectiveConfig, ObjectiveName, Packing
from llmtrain.errors import ConfigError
from llmtrain.metrics import perplexity
from llmtrain.vocab_loss import IGNORE, head_cross_entropy, sum_cross_entropy

Row = tuple[int, Any, Any]  # (example index, prediction, reference)
PAIRED = {ObjectiveName.mlm_nsp, ObjectiveName.mlm_sop}
# Characters with which byte-level BPE (Ġ: space, Ċ: newline, ĉ: tab, č: return) and
# SentencePiece (▁) tokens show whitespace.
_SPACES = "ĠĊĉč▁"


class Objective(Protocol):
    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]: ...

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, ...]: ...  # (loss_sum, n_targets[, parts])


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


def _stack(examples: list[dict]) -> dict[str, torch.Tensor]:
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


def _vocabulary_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module mapping hidden states to vocabulary logits (BERT's pretraining heads hold it
    beside the next-sentence head), or None."""
    head = getattr(model, "cls", None)
    if head is not None:
        return getattr(head, "predictions", head)
    return getattr(model, "lm_head", None)


def _head_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], pick, labels: torch.Tensor, causal: bool
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Summed cross-entropy of the vocabulary head at the positions `pick(hidden)` selects,
    against `labels` (picked the same way), or None for a model whose output head we cannot
    call alone. The vocabulary projection dominates small models' compute and memory traffic,
    so it runs where there are targets and nowhere else (llmtrain.vocab_loss)."""
    head = _vocabulary_head(model)
    if head is None:
        return None
    hidden = model.base_model(**model_inputs(model, batch, causal)).last_hidden_state
    return head_cross_entropy(head, pick(hidden), labels)


def _word_tables(tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token id: does it continue the word before it (`glued`), does a word end with it
    (`ends`)? WordPiece marks continuations (`##`); byte-level BPE and SentencePiece mark
    word starts (a leading space), so there a token is glued unless it or the token before
    it has whitespace at that edge. Special tokens are words of their own."""
    vocab = [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = backend.model if backend is not None else None
    if type(model).__name__ == "WordPiece":
        glued = [t.startswith(model.continuing_subword_prefix) for t in vocab]
        ends = [False] * len(vocab)
    elif any(t[:1] in ("Ġ", "▁") for t in vocab if t):
        glued = [t[:1] not in _SPACES for t in vocab]
        ends = [t[-1:] in _SPACES for t in vocab]
    else:
        raise ConfigError(
            "objective.whole_word_mask: the tokenizer marks no word boundaries "
            "(WordPiece '##' or byte-level BPE 'Ġ')"
        )
    for i in tokenizer.all_special_ids:
        glued[i], ends[i] = False, True
    return torch.tensor(glued), torch.tensor(ends)


class MaskedLM:
    """BERT's masked-language modelling: a share of non-special tokens become targets; of those,
    `mask_replace_prob` are replaced by [MASK], `random_replace_prob` by a random non-special
    token, and the rest stay as they are. With `whole_word_mask` the choices are made per word:
    a word's sub-tokens are all targets or none, and all [MASK], all random or all kept."""

    def __init__(self, cfg: ObjectiveConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        if tokenizer.mask_token_id is None:
            raise ConfigError("objective=mlm needs a tokenizer with a mask token")
        self.p = cfg.mlm_probability
        self.p_mask = cfg.mask_replace_prob
        self.p_random = cfg.random_replace_prob
        self.mask_id = tokenizer.mask_token_id
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        vocab = torch.arange(len(tokenizer))
        self.normal_ids = vocab[~torch.isin(vocab, self.special_ids)]
        self.words = _word_tables(tokenizer) if cfg.whole_word_mask else None

    def word_starts(self, ids: torch.Tensor) -> torch.Tensor:
        """For each position of (batch, length) ids, the position where its word begins."""
        glued_to, ends = self.words
        glued = glued_to[ids]
        glued[:, 1:] &= ~ends[ids[:, :-1]]
        glued[:, 0] = False  # a block may begin inside a word: its first token starts one
        position = torch.arange(ids.shape[1]).expand_as(ids)
        return torch.where(glued, 0, position).cummax(dim=1).values

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = _stack(examples)
        ids = batch["input_ids"]
        draws, picks = [], []
        for i, ex in enumerate(examples):
            g = torch.Generator().manual_seed(int(ex.get("sample_seed", i)))
            draws.append(torch.rand(2, ids.shape[1], generator=g))
            picks.append(torch.randint(len(self.normal_ids), (ids.shape[1],), generator=g))
        u = torch.stack(draws, dim=1)  # (2, batch, length): target choice, replacement choice
        if self.words is not None:  # every token takes its word's first draws
            u = u.gather(2, self.word_starts(ids).expand_as(u))
        chosen = (u[0] < self.p) & ~torch.isin(ids, self.special_ids)
        if "attention_mask" in batch:  # padding is never a target, whatever its id
            chosen &= batch["attention_mask"].bool()
        labels = torch.where(chosen, ids, IGNORE)
        to_mask = chosen & (u[1] < self.p_mask)
        to_random = chosen & (u[1] >= self.p_mask) & (u[1] < self.p_mask + self.p_random)
        inputs = ids.clone()
        inputs[to_mask] = self.mask_id
        inputs[to_random] = self.normal_ids[torch.stack(picks)][to_random]
        return {**batch, "input_ids": inputs, "labels": labels}

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (batch["labels"] != IGNORE).sum()

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        labels = batch["labels"]
        targets = labels != IGNORE  # ~15 % of positions; same loss as full logits (tested)
        loss = _head_loss(model, batch, lambda h: h[targets], labels[targets], causal=False)
        if loss is None:
            return sum_cross_entropy(model(**model_inputs(model, batch, False)).logits, labels)
        return loss


class MaskedLMWithPairs(MaskedLM):
    """BERT's pretraining (MLM + next-sentence prediction) or ALBERT's sentence-order variant,
    on `[CLS] A [SEP] B [SEP]` pairs (llmtrain.data.pairs) and a `BertForPreTraining` model.

    Weighting: the loop divides a step's summed loss by the step's masked tokens (over all
    micro-batches and processes). The pair loss enters that sum as `pair_weight` x (its sum over
    pairs), with `pair_weight` = the expected masked tokens per pair (mlm_probability x the
    training pairs' mean tokens), so the step's loss is about MLM mean + pair mean, as BERT
    adds the two means. The weight is one constant for the run, so the loss stays a sum over
    examples over a global count: accumulation and several processes give exactly the
    gradient of one big batch (a ratio taken per micro-batch would not).
    """

    def __init__(
        self, cfg: ObjectiveConfig, tokenizer: PreTrainedTokenizerBase, tokens_per_pair: float
    ) -> None:
        super().__init__(cfg, tokenizer)
        self.pair_weight = cfg.mlm_probability * tokens_per_pair
        self.task = "sop" if cfg.name is ObjectiveName.mlm_sop else "nsp"

    n_parts = 5  # MLM loss sum, masked tokens, pair loss sum, pairs right, pairs

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().collate(examples)
        for key in ("token_type_ids", "attention_mask", "next_sentence_label"):
            batch[key] = torch.stack([ex[key] for ex in examples])
        width = int(batch["attention_mask"].sum(1).max())  # drop columns that are all padding
        return {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labels = batch["labels"]
        targets = labels != IGNORE
        out = model.base_model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
        mlm_sum, n = head_cross_entropy(
            model.cls.predictions, out.last_hidden_state[targets], labels[targets]
        )
        logits = model.cls.seq_relationship(out.pooler_output).float()
        pair_labels = batch["next_sentence_label"]
        pair_sum = F.cross_entropy(logits, pair_labels, reduction="sum")
        right = (logits.argmax(-1) == pair_labels).sum()
        pairs = torch.ones_like(pair_labels).sum()
        parts = torch.stack([x.detach().double() for x in (mlm_sum, n, pair_sum, right, pairs)])
        return mlm_sum + self.pair_weight * pair_sum, n, parts

    def report(self, totals: list[float]) -> dict[str, float]:
        mlm_sum, masked, pair_sum, right, pairs = totals
        mlm = mlm_sum / max(masked, 1)
        return {
            "mlm_loss": mlm,
            "perplexity": perplexity(mlm),
            f"{self.task}_loss": pair_sum / max(pairs, 1),
            f"{self.task}_accuracy": right / max(pairs, 1),
        }


class CausalLM:
    """GPT's next-token prediction: every token is a target for the position before it (with
    document packing, except a document segment's first token: nothing before it is its own)."""

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        return _stack(examples)

    @staticmethod
    def _labels(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["input_ids"][:, 1:]
        if "attention_mask" in batch:  # padded documents: padding is no target
            return labels.masked_fill(batch["attention_mask"][:, 1:] == 0, IGNORE)
        if "position_ids" in batch:  # a segment's first token: nothing before it is its own
            return labels.masked_fill(batch["position_ids"][:, 1:] == 0, IGNORE)
        return labels

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self._labels(batch) != IGNORE).sum()

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The last position predicts nothing: leave it out before the head, not after.
        labels = self._labels(batch)
        loss = _head_loss(model, batch, lambda h: h[:, :-1], labels, causal=True)
        if loss is None:
            logits = model(**model_inputs(model, batch, True)).logits[:, :-1]
            return sum_cross_entropy(logits, labels)
        return loss
