"""Supervised fine-tuning data (task=sft, tasks/sft.py): prompt → response examples, as token
rows whose labels mark the response tokens only.

A row of the input file holds either a prompt and a response (joined as written: any separator
belongs in the prompt) or a conversation, a list of `{role, content}` messages rendered by the
tokenizer's chat template (`DEFAULT_CHAT_TEMPLATE` when it has none); every assistant turn is a
target. Each example ends with the end-of-sequence token, a target too, so the model learns to
stop.

Rows carry `position_ids`: packed rows restart them at 0 for each example, and the model
(transformers' packed-sequence masks: position ids that restart, no attention mask) lets each
example attend only to itself; the first token of every example is never a target. A packed
row's loss is therefore exactly the sum of its examples' losses on their own (tested).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from llmtrain.data.files import read_records
from llmtrain.errors import ConfigError, DataError
from llmtrain.train.contract import IGNORE

# For tokenizers without a template (our own pretraining runs'): a role line, then the text;
# an assistant turn ends with the end-of-sequence token, where generation stops.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Example:
    where: str  # file:line, for error messages
    prompt: str = ""
    response: str = ""
    messages: tuple[dict, ...] | None = None  # a conversation instead of prompt and response

    def texts(self) -> list[str]:
        """The example's own text (what a fresh tokenizer is trained on)."""
        if self.messages is None:
            return [self.prompt, self.response]
        return [m["content"] for m in self.messages]


@dataclass(frozen=True)
class Prompt:
    """What a validation example asks, as generation sees it, and the answer it expects."""

    ids: list[int]
    text: str
    reference: str


def load_splits(cfg: Any, seed: int) -> dict[str, list[Example]]:
    """`train` and `validation` examples: from task.validation_file, or a seeded share
    (task.validation_fraction) held out of the training file."""
    if not cfg.train_file:
        raise ConfigError("task=sft needs task.train_file")
    train = read_examples(Path(cfg.train_file).expanduser(), cfg)
    if cfg.validation_file:
        return {
            "train": train,
            "validation": read_examples(Path(cfg.validation_file).expanduser(), cfg),
        }
    if not 0 < cfg.validation_fraction < 1:
        raise ConfigError(
            f"task.validation_fraction={cfg.validation_fraction} must be between 0 and 1 "
            "(or give task.validation_file)"
        )
    if len(train) < 2:
        raise DataError(
            f"{cfg.train_file}: {len(train)} example, too few to hold some out; "
            "give task.validation_file"
        )
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n = min(len(train) - 1, max(1, round(cfg.validation_fraction * len(train))))
    held = sorted(order[:n])
    kept = sorted(order[n:])
    return {"train": [train[i] for i in kept], "validation": [train[i] for i in held]}


def load_validation(cfg: Any, seed: int) -> list[Example]:
    """The validation examples alone: task.validation_file, else the share of task.train_file
    that `load_splits` holds out with the same seed."""
    if cfg.validation_file:
        return read_examples(Path(cfg.validation_file).expanduser(), cfg)
    if not cfg.train_file:
        raise ConfigError("task=sft needs task.validation_file (or task.train_file)")
    return load_splits(cfg, seed)["validation"]


def read_examples(path: Path, cfg: Any) -> list[Example]:
    """Examples of a .jsonl (or .csv / .tsv / .parquet) file; a bad row stops with its line."""
    path, records = read_records(path)
    return [_example(record, f"{path}:{number}", cfg) for number, record in records]


def _example(record: object, where: str, cfg: Any) -> Example:
    if not isinstance(record, dict):
        raise DataError(f"{where}: not a JSON object with a prompt and a response")
    if cfg.messages_field in record:
        return Example(where, messages=_messages(record[cfg.messages_field], where, cfg))
    if cfg.prompt_field not in record:
        raise DataError(
            f"{where}: no '{cfg.prompt_field}' or '{cfg.messages_field}' field "
            "(task.prompt_field, task.messages_field)"
        )
    prompt, response = record[cfg.prompt_field], record.get(cfg.response_field)
    if response is None or response == "":
        raise DataError(
            f"{where}: a prompt without a response (field '{cfg.response_field}', "
            "task.response_field)"
        )
    for name, value in ((cfg.prompt_field, prompt), (cfg.response_field, response)):
        if not isinstance(value, str):
            raise DataError(f"{where}: '{name}' is not a string")
    if not prompt:
        raise DataError(f"{where}: the prompt '{cfg.prompt_field}' is empty")
    return Example(where, prompt=prompt, response=response)


def _messages(value: object, where: str, cfg: Any) -> tuple[dict, ...]:
    field = cfg.messages_field
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{field}' is not a list of messages")
    for i, message in enumerate(value):
        if not (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise DataError(f"{where}: {field}[{i}] needs 'role' and 'content' strings")
    if not any(m["role"] == "assistant" for m in value):
        raise DataError(f"{where}: the conversation has no assistant turn to train on")
    return tuple({"role": m["role"], "content": m["content"]} for m in value)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, examples: list[Example]) -> None:
    """Give a tokenizer without a chat template the default one when conversations need it
    (saved with the model, so final/ renders chats as training did)."""
    if tokenizer.eos_token_id is None:
        raise ConfigError("task=sft needs a tokenizer with an end-of-sequence token")
    if tokenizer.chat_template is None and any(e.messages is not None for e in examples):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE


def _render(tokenizer, messages, where: str, generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )
    except Exception as e:  # the template's own checks (e.g. roles must alternate)
        raise DataError(f"{where}: the chat template rejects the conversation: {e}") from None


def _segments(example: Example, tokenizer: PreTrainedTokenizerBase) -> list[tuple[str, bool]]:
    """The example's text in order, each piece marked target or not."""
    if example.messages is None:
        return [(example.prompt, False), (example.response, True)]
    pieces, done = [], ""
    for i, message in enumerate(example.messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, example.messages[:i], example.where, True)
        after = _render(tokenizer, example.messages[: i + 1], example.where, False)
        if not (before.startswith(done) and after.startswith(before)):
            raise DataError(
                f"{example.where}: the chat template does not render the conversation turn by "
                "turn (an earlier rendering is not a prefix of a later one)"
            )
        pieces += [(before[len(done) :], False), (after[len(before) :], True)]
        done = after
    return pieces  # turns after the last assistant turn teach nothing: left out


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    # No special tokens are added: a chat template writes the ones it wants as text.
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def tokenize(example: Example, tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """(input ids, labels): labels are the ids at target positions and IGNORE elsewhere."""
    ids: list[int] = []
    labels: list[int] = []
    for text, target in _segments(example, tokenizer):
        piece = _ids(tokenizer, text)
        ids += piece
        labels += piece if target else [IGNORE] * len(piece)
    eos = tokenizer.eos_token_id
    if not ids or ids[-1] != eos:
        ids.append(eos)
        labels.append(eos)
    labels[0] = IGNORE  # nothing precedes it within its example (and in a packed row, must not)
    return ids, labels


@dataclass
class Encoded:
    rows: list[dict]  # {"input_ids", "labels", "position_ids"}
    truncated: int  # examples cut at max_length
    dropped: int  # examples left without a target token by the cut


def encode(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, max_length: int, packing: bool
) -> Encoded:
    """Token rows of at most `max_length`: one example each, or packed in file order (an example
    goes into the current row while it fits, else starts the next)."""
    rows: list[dict] = []
    truncated = dropped = 0
    for example in examples:
        ids, labels = tokenize(example, tokenizer)
        if len(ids) > max_length:
            truncated += 1
            ids, labels = ids[:max_length], labels[:max_length]
            if all(label == IGNORE for label in labels):
                dropped += 1
                continue
        if packing and rows and len(rows[-1]["input_ids"]) + len(ids) <= max_length:
            row = rows[-1]
        else:
            row = {"input_ids": [], "labels": [], "position_ids": []}
            rows.append(row)
        row["input_ids"] += ids
        row["labels"] += labels
        row["position_ids"] += list(range(len(ids)))
    return Encoded(rows, truncated, dropped)


def prompt(example: Example, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Prompt:
    """What generation starts from: the example's tokens before its last target (the prompt, or
    the conversation up to the template's generation prompt for its last assistant turn), cut
    to the last `max_length` tokens; and the response it should give."""
    *context, _ = _segments(example, tokenizer)
    ids = [i for text, _ in context for i in _ids(tokenizer, text)]
    if example.messages is None:
        reference = example.response
    else:
        reference = [m for m in example.messages if m["role"] == "assistant"][-1]["content"]
    return Prompt(ids[-max_length:], "".join(text for text, _ in context), reference)
