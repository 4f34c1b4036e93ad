"""Supervised fine-tuning (`task=sft`): a causal LM trained on prompt → response examples, the
loss on the responses only. Evaluations report the validation responses' loss and perplexity,
write generations from validation prompts to predictions/samples.jsonl and, with
task.rouge=true, their ROUGE-L against the references. Reading, rendering and packing the
examples: tasks/sft_data.py. torch is imported where used (the schema is read by --help
without it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtrain.config import Family, ModelConfig, ObjectiveName, opt
from llmtrain.errors import ConfigError, DataError
from llmtrain.tasks import TaskConfig
from llmtrain.train.contract import IGNORE, Objective

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from llmtrain.rundir import RunDir
    from llmtrain.tasks.sft_data import Example

HEAD = "clm"


@dataclass
class SftConfig(TaskConfig):
    kind: str = opt("sft", "supervised fine-tuning of a causal LM on prompts and responses")
    name: str = opt("sft", "the task's name")
    train_file: str | None = opt(None, "training examples (.jsonl); finetune needs it")
    validation_file: str | None = opt(None, "evaluation examples; evaluate reads it alone")
    prompt_field: str = opt("prompt", "the field holding a prompt")
    response_field: str = opt("response", "the field holding the prompt's response")
    messages_field: str = opt(
        "messages", "the field holding a conversation, a list of {role, content}"
    )
    validation_fraction: float = opt(
        0.05, "share of the training examples held out when no validation_file is given"
    )
    max_length: int = opt(512, "tokens per row; longer examples are cut")
    packing: bool = opt(
        True, "several examples per max_length row, each seeing only itself; false: one a row"
    )
    # What evaluations generate, not what is trained: free to change on resumption.
    samples: int | None = opt(
        4, "validation prompts generated from at each evaluation; null: all", resume_free=True
    )
    max_new_tokens: int = opt(64, "longest generation, in tokens", resume_free=True)
    do_sample: bool = opt(False, "sample the generations (seeded); false: greedy", resume_free=True)
    temperature: float = opt(1.0, "sampling temperature (do_sample)", resume_free=True)
    top_p: float = opt(1.0, "nucleus sampling share (do_sample)", resume_free=True)
    rouge: bool = opt(False, "ROUGE-L of the generations against the references", resume_free=True)


SCHEMA = SftConfig


def check(cfg: SftConfig, model: ModelConfig) -> None:
    from llmtrain import models
    from llmtrain.metrics import rouge_l

    if models.source(model):
        models.check_objective(model, ObjectiveName.clm)  # a decoder: before any data work
    elif model.family is not Family.gpt2:
        raise ConfigError(
            "task=sft trains a causal LM: model=gpt2-tiny for a fresh one, or "
            "model.from_run=… / model.name_or_path=… of a decoder"
        )
    if cfg.max_length < 2:
        raise ConfigError(f"task.max_length={cfg.max_length} must be at least 2")
    if cfg.samples is not None and cfg.samples < 0:
        raise ConfigError(f"task.samples={cfg.samples} must not be negative (null: all)")
    if cfg.max_new_tokens <= 0:
        raise ConfigError(f"task.max_new_tokens={cfg.max_new_tokens} must be positive")
    if cfg.do_sample and (cfg.temperature <= 0 or not 0 < cfg.top_p <= 1):
        raise ConfigError("task.temperature must be positive and task.top_p in (0, 1]")
    if cfg.rouge and cfg.samples == 0:
        raise ConfigError("task.rouge=true needs generations: task.samples=0 makes none")
    if cfg.rouge:
        rouge_l([], [])  # fails now, not after training, when rouge-score is missing


class SupervisedFineTuning:
    main_metric, greater_is_better = "loss", False  # the lowest loss on the responses
    eval_splits = ["validation"]

    def __init__(self, cfg: SftConfig, training: bool, seed: int) -> None:
        from llmtrain.tasks import sft_data

        self.cfg, self.seed = cfg, seed
        if training:
            self.examples = sft_data.load_splits(cfg, seed)
        else:  # the validation file, or the share of the training file fine-tuning held out
            self.examples = {"validation": sft_data.load_validation(cfg, seed)}

    def describe(self) -> str:
        return "loss on responses"

    def train_texts(self) -> list[str]:
        return [t for ex in self.examples["train"] for t in ex.texts()]

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, warn: Callable[[str], None]
    ) -> dict[str, list[dict]]:
        from llmtrain.tasks.sft_data import prepare_tokenizer

        prepare_tokenizer(tokenizer, [ex for split in self.examples.values() for ex in split])
        return {
            name: self._encode(
                examples, tokenizer, name == "train" and self.cfg.packing, name, warn
            )
            for name, examples in self.examples.items()
        }

    def _encode(
        self,
        examples: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        packing: bool,
        split: str,
        warn: Callable[[str], None],
    ) -> list[dict]:
        from llmtrain.tasks.sft_data import encode

        limit = self.cfg.max_length
        encoded = encode(examples, tokenizer, limit, packing)
        if encoded.truncated:
            dropped = encoded.dropped
            warn(
                f"{split}: {encoded.truncated} of {len(examples)} examples are longer than "
                f"task.max_length={limit} tokens and were cut"
                + (f"; {dropped} lost every response token and were left out" if dropped else "")
            )
        if not encoded.rows:
            raise DataError(
                f"{split}: no example keeps a response token within task.max_length={limit}"
            )
        return encoded.rows

    def build_model(self, cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        from llmtrain.models import build_model

        return build_model(cfg, ObjectiveName.clm, tokenizer)

    def objective(self, tokenizer: PreTrainedTokenizerBase) -> SupervisedLM:
        from llmtrain.data.packing import pad_id

        return SupervisedLM(pad_id(tokenizer))

    def predictions_file(self, split: str, predictions: Any) -> tuple[str, str]:
        raise TypeError("task=sft predicts nothing per example: its samples are `extra`'s")

    def extra(
        self, tokenizer: PreTrainedTokenizerBase, accelerator: Accelerator, run: RunDir
    ) -> Callable[[PreTrainedModel], dict[str, float]]:
        """Generations from the first task.samples validation prompts, written to
        predictions/samples.jsonl (replacing the previous evaluation's), and their ROUGE-L when
        task.rouge=true."""
        from llmtrain.decoding import Decoding, generate
        from llmtrain.metrics import rouge_l
        from llmtrain.tasks.sft_data import prompt

        cfg, examples = self.cfg, self.examples["validation"]
        chosen = examples if cfg.samples is None else examples[: cfg.samples]
        prompts = [prompt(ex, tokenizer, cfg.max_length) for ex in chosen]
        temperature = cfg.temperature if cfg.do_sample else 0.0
        decoding = Decoding(cfg.max_new_tokens, temperature, top_p=cfg.top_p)

        def sample(model: PreTrainedModel) -> dict[str, float]:
            out = generate(
                model, tokenizer, [p.ids for p in prompts], decoding, self.seed, 1, accelerator
            )
            texts = [
                tokenizer.decode(rows[0, len(p.ids) :], skip_special_tokens=True)
                for p, rows in zip(prompts, out, strict=True)
            ]
            rows = [
                {"prompt": p.text, "reference": p.reference, "generation": text}
                for p, text in zip(prompts, texts, strict=True)
            ]
            run.write_text("predictions/samples.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            if not cfg.rouge:
                return {}
            return {"rouge_l": rouge_l(texts, [p.reference for p in prompts])}

        return sample


def load(
    cfg: SftConfig, cache_dir: Path, training: bool, model_labels: list[str] | None, seed: int
) -> SupervisedFineTuning:
    return SupervisedFineTuning(cfg, training, seed)


class SupervisedLM(Objective):
    """Next-token prediction on the response tokens only (tasks/sft_data.py makes the rows:
    `labels` hold the token ids at target positions, IGNORE elsewhere).

    Rows are padded per batch; `position_ids` go to the model instead of an attention mask, so
    a packed row's examples (positions restarting at 0) each attend only to themselves, and the
    padding, after every real token and never a target, changes nothing. `attention_mask` marks
    the real tokens for the loop's token count; the model does not get it.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        import torch

        longest = max(len(ex["input_ids"]) for ex in examples)
        batch = {
            k: torch.full((len(examples), longest), fill, dtype=torch.long)
            for k, fill in (("input_ids", self.pad_id), ("labels", IGNORE), ("position_ids", 0))
        }
        batch["attention_mask"] = torch.zeros(len(examples), longest, dtype=torch.long)
        for i, ex in enumerate(examples):
            n = len(ex["input_ids"])
            batch["input_ids"][i, :n] = torch.as_tensor(ex["input_ids"])
            batch["labels"][i, :n] = torch.as_tensor(ex["labels"])
            positions = torch.as_tensor(ex["position_ids"])
            # Padding continues the last example's positions: one sequence, no new one.
            batch["position_ids"][i] = torch.cat(
                [positions, positions[-1] + 1 + torch.arange(longest - n)]
            )
            batch["attention_mask"][i, :n] = 1
        return batch

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:

        return (batch["labels"][:, 1:] != IGNORE).sum()

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from llmtrain.objectives.inputs import model_inputs
        from llmtrain.objectives.vocab_loss import head_loss, sum_cross_entropy

        ids, labels = batch["input_ids"], batch["labels"][:, 1:]
        scored = labels != IGNORE
        # position_ids alone (not the token-count mask): block-diagonal causal attention
        packed = {"input_ids": ids, "position_ids": batch["position_ids"]}
        loss = head_loss(model, packed, lambda h: h[:, :-1][scored], labels[scored], causal=True)
        if loss is None:
            logits = model(**model_inputs(model, packed, True)).logits[:, :-1][scored]
            return sum_cross_entropy(logits, labels[scored])
        return loss
