"""Masked-language modelling (BERT): MLM, and MLM + next-sentence / sentence-order prediction.

Examples may carry a `sample_seed` (the loop sets one per (epoch, example)); the MLM objective
draws that example's mask from it, so masks do not depend on batching, workers, ranks or where
a run resumed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from llmtrain.config import ObjectiveConfig, ObjectiveName
from llmtrain.errors import ConfigError
from llmtrain.metrics import perplexity
from llmtrain.objectives.inputs import model_inputs, stack
from llmtrain.objectives.vocab_loss import head_cross_entropy, head_loss, sum_cross_entropy
from llmtrain.train.contract import IGNORE, Objective

# Characters with which byte-level BPE (Ġ: space, Ċ: newline, ĉ: tab, č: return) and
# SentencePiece (▁) tokens show whitespace.
_SPACES = "ĠĊĉč▁"


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


class MaskedLM(Objective):
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
        batch = stack(examples)
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
        loss = head_loss(model, batch, lambda h: h[targets], labels[targets], causal=False)
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
