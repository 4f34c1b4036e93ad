"""Extractive question answering data: SQuAD v1.1 / v2.0 files or a hub dataset, windows over
long contexts, and the answer a model's start/end scores point to.

An example is `{"id", "question", "context", "answers", "starts"}`: the gold answer texts and
their character offsets in the context (no answers: unanswerable, SQuAD 2.0 only). A context
longer than the window is split into overlapping windows ("features"), each remembering its
example and the character span of every context token, so that scores over all windows can be
turned back into one answer per question.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from llmtrain.data.files import require_file
from llmtrain.errors import ConfigError, DataError

OUTSIDE = [-1, -1]  # the character span of a token outside the context (question, specials)
DEFAULT_HUB = {False: "rajpurkar/squad", True: "rajpurkar/squad_v2"}


def read_squad(path: Path, v2: bool) -> datasets.Dataset:
    """A SQuAD JSON file: `{"data": [{"paragraphs": [{"context", "qas": [...]}]}]}`."""
    require_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: byte {e.start} is not UTF-8 ({e.reason})") from None
    rows = []
    for a, article in enumerate(_field(data, "data", str(path), list), 1):
        for p, paragraph in enumerate(
            _field(article, "paragraphs", f"{path}: article {a}", list), 1
        ):
            where = f"{path}: article {a}, paragraph {p}"
            context = _field(paragraph, "context", where, str)
            for qa in _field(paragraph, "qas", where, list):
                qid = str(_field(qa, "id", where, (str, int)))
                example = f"{path}: question '{qid}'"
                answers = [] if qa.get("is_impossible") else _field(qa, "answers", example, list)
                rows.append(
                    {
                        "id": qid,
                        "question": _field(qa, "question", example, str),
                        "context": context,
                        "answers": [str(_field(x, "text", example, str)) for x in answers],
                        "starts": [_field(x, "answer_start", example, int) for x in answers],
                    }
                )
    return _checked(rows, str(path), v2)


def hub_squad(name: str, cache_dir: Path, v2: bool) -> dict[str, datasets.Dataset]:
    """The train and validation splits of a hub dataset in SQuAD's columns."""
    try:
        hub = datasets.load_dataset(name, cache_dir=str(cache_dir / "datasets"))
    except Exception as e:  # offline, or not found: the message says which
        raise ConfigError(
            f"task.hub_dataset={name}: cannot load it ({type(e).__name__}: {e}); "
            "give task.train_file and task.validation_file (SQuAD JSON)"
        ) from e
    splits = {}
    for split in ("train", "validation"):
        rows = [
            {
                "id": str(r["id"]),
                "question": r["question"],
                "context": r["context"],
                "answers": list(r["answers"]["text"]),
                "starts": list(r["answers"]["answer_start"]),
            }
            for r in hub[split]
        ]
        splits[split] = _checked(rows, f"{name} ({split})", v2)
    return splits


def _field(record: object, key: str, where: str, kind: type | tuple[type, ...]):
    if not isinstance(record, dict) or key not in record:
        raise DataError(f"{where}: no '{key}'")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{where}: '{key}' is not of the expected type ({type(value).__name__})")
    return value


def _checked(rows: list[dict], source: str, v2: bool) -> datasets.Dataset:
    """Every answer where its `answer_start` says; unanswerable questions only in SQuAD 2.0."""
    seen = set()
    for row in rows:
        where = f"{source}: question '{row['id']}'"
        if row["id"] in seen:
            raise DataError(f"{where}: the id is used twice")
        seen.add(row["id"])
        if not row["answers"] and not v2:
            raise DataError(
                f"{where} has no answer; task=squad needs one for every question "
                "(task=squad_v2 allows unanswerable ones)"
            )
        for text, start in zip(row["answers"], row["starts"], strict=True):
            found = row["context"][start : start + len(text)]
            if found != text:
                raise DataError(
                    f"{where}: answer '{text}' is not at answer_start={start} of its context "
                    f"(there: '{found}')"
                )
    if not rows:
        raise DataError(f"{source}: no questions")
    return datasets.Dataset.from_list(rows)


def encode_squad(
    examples: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    doc_stride: int,
) -> datasets.Dataset:
    """Windows of `question [SEP] context part` of at most `max_length` tokens, consecutive
    windows sharing `doc_stride` context tokens. Each carries `labels` = (start, end) token of
    the first gold answer, or (0, 0) — the first token, the "no answer" position — when the
    window does not hold it; `offsets`, the character span of each context token; `example`,
    its example's row; and `index`, its own row."""
    if not tokenizer.is_fast:
        raise ConfigError("question answering needs a fast tokenizer (it maps tokens to text)")
    if not 0 <= doc_stride < max_length:
        raise ConfigError(
            f"task.doc_stride={doc_stride} must be below task.max_length={max_length}"
        )

    def windows(batch: dict, rows: list[int]) -> dict:
        try:
            enc = tokenizer(
                [q.lstrip() for q in batch["question"]],
                batch["context"],
                truncation="only_second",
                max_length=max_length,
                stride=doc_stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                return_attention_mask=False,
            )
        except Exception as e:  # the tokenizer's own error: a question too long for a window
            raise ConfigError(
                f"task.max_length={max_length} with task.doc_stride={doc_stride} leaves no room "
                f"for the context after a question ({str(e).splitlines()[0]})"
            ) from None
        owners = enc.pop("overflow_to_sample_mapping")
        spans, labels = [], []
        for i, (owner, offsets) in enumerate(zip(owners, enc.pop("offset_mapping"), strict=True)):
            context = [
                list(o) if s == 1 else OUTSIDE
                for o, s in zip(offsets, enc.sequence_ids(i), strict=True)
            ]
            spans.append(context)
            labels.append(_answer_tokens(context, batch["answers"][owner], batch["starts"][owner]))
        return {**enc, "labels": labels, "offsets": spans, "example": [rows[o] for o in owners]}

    features = examples.map(
        windows, batched=True, with_indices=True, remove_columns=examples.column_names
    )
    return features.add_column("index", list(range(len(features))))


def _answer_tokens(offsets: list[list[int]], answers: list[str], starts: list[int]) -> list[int]:
    """(first token, last token) of the first answer when the window holds all of it, else
    (0, 0)."""
    inside = [j for j, (s, _) in enumerate(offsets) if s >= 0]
    if not answers or not inside:
        return [0, 0]
    start, end = starts[0], starts[0] + len(answers[0])
    if offsets[inside[0]][0] > start or offsets[inside[-1]][1] < end:
        return [0, 0]
    first = max(j for j in inside if offsets[j][0] <= start)
    last = min(j for j in inside if offsets[j][1] >= end)
    return [first, last]


@dataclass
class Window:
    """A model's view of one window: its best start and end tokens with their scores."""

    offsets: list[list[int]]  # character span of each token; OUTSIDE outside the context
    starts: list[tuple[int, float]]
    ends: list[tuple[int, float]]
    null: float  # score of the null answer: start and end on the first token


def best_answer(
    context: str, windows: list[Window], max_answer_length: int, null_threshold: float | None
) -> str:
    """The highest-scoring span (start score + end score) inside any one window's context, at
    most `max_answer_length` tokens; with a `null_threshold` (SQuAD 2.0) the empty answer when
    the lowest null score over the windows beats that span by more than the threshold."""
    best, best_score = "", -math.inf
    for window in windows:
        spans = window.offsets
        for s, s_score in window.starts:
            for e, e_score in window.ends:
                if not (0 <= s <= e < len(spans) and e - s < max_answer_length):
                    continue
                if spans[s][0] < 0 or spans[e][0] < 0:
                    continue
                if s_score + e_score > best_score:
                    best, best_score = context[spans[s][0] : spans[e][1]], s_score + e_score
    if null_threshold is not None and windows:
        if min(w.null for w in windows) - best_score > null_threshold:
            return ""
    return best


def predictions_json(answers: dict[str, str]) -> str:
    return json.dumps(answers, indent=2, ensure_ascii=False) + "\n"


def answers_from_scores(
    examples: datasets.Dataset,
    features: datasets.Dataset,
    scores: dict[int, tuple[list, list, float]],
    max_answer_length: int,
    null_threshold: float | None,
) -> dict[str, str]:
    """One answer per question from each scored window's (starts, ends, null) candidates, keyed
    by window row; questions without a scored window are left out."""
    windows: dict[int, list[Window]] = {}
    spans = features.select_columns(["example", "offsets"])
    for index, (starts, ends, null) in sorted(scores.items()):
        row = spans[index]
        windows.setdefault(row["example"], []).append(Window(row["offsets"], starts, ends, null))
    out = {}
    for i, found in sorted(windows.items()):
        example = examples[i]
        out[example["id"]] = best_answer(
            example["context"], found, max_answer_length, null_threshold
        )
    return out
