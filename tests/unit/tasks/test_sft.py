"""Supervised fine-tuning (task=sft) in-process: the loss counts response tokens only (every
assistant turn), packing changes no loss, the held-out split, bad rows named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from sft_fixtures import sft_rows, write_jsonl
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmtrain.errors import DataError
from llmtrain.tasks import sft_data as sft
from llmtrain.tasks.sft import SftConfig, SupervisedLM
from llmtrain.train.contract import IGNORE


@pytest.fixture(scope="session")
def tokenizer(clm_run):
    tok = AutoTokenizer.from_pretrained(clm_run / "final")
    tok.chat_template = sft.DEFAULT_CHAT_TEMPLATE  # what a run gives it for conversations
    return tok


def _examples(tmp_path: Path) -> list[sft.Example]:
    return sft.read_examples(write_jsonl(tmp_path / "rows.jsonl", sft_rows()[:4]), SftConfig())


def test_prompt_tokens_are_not_targets(tokenizer, clm_run, tmp_path):
    pair, chat = _examples(tmp_path)[:2]
    # Prompt and response: the prompt's tokens are IGNORE, the response's and EOS are targets.
    ids, labels = sft.tokenize(pair, tokenizer)
    n_prompt = len(tokenizer(pair.prompt)["input_ids"])
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[n_prompt:-1]) == pair.response
    # A conversation: only the assistant's words and the end of its turn are targets.
    ids, labels = sft.tokenize(chat, tokenizer)
    targets = [i for i, label in zip(ids, labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(targets) == chat.messages[1]["content"] + tokenizer.eos_token

    # The loss is cross-entropy over the response positions of a plain forward, nothing else:
    # whatever a prompt position's label were, it would not enter.
    model = AutoModelForCausalLM.from_pretrained(clm_run / "final").eval()
    objective = SupervisedLM(tokenizer.pad_token_id)
    rows = sft.encode([pair], tokenizer, 64, packing=False).rows
    batch = objective.collate(rows)
    loss, n = objective.loss(model, batch)
    logits = model(torch.tensor([rows[0]["input_ids"]])).logits[0, :-1]
    nxt = torch.tensor(rows[0]["input_ids"][1:])
    every = F.cross_entropy(logits, nxt, reduction="none")
    response = slice(n_prompt - 1, None)  # positions predicting the response tokens and EOS
    assert n == every[response].numel()
    assert loss.item() == pytest.approx(every[response].sum().item(), rel=1e-5)
    assert loss.item() != pytest.approx(every.sum().item(), rel=1e-3)


def test_packing_changes_no_loss(tokenizer, clm_run, tmp_path):
    """A packed row's examples attend only to themselves: its loss is the sum of theirs."""
    examples = _examples(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(clm_run / "final").eval()
    objective = SupervisedLM(tokenizer.pad_token_id)
    packed = sft.encode(examples, tokenizer, 200, packing=True).rows
    single = sft.encode(examples, tokenizer, 200, packing=False).rows
    assert len(packed) == 1 and len(single) == len(examples)
    with torch.no_grad():
        loss_packed, n_packed = objective.loss(model, objective.collate(packed))
        loss_single, n_single = objective.loss(model, objective.collate(single))  # padded
        alone = [objective.loss(model, objective.collate([row]))[0] for row in single]
    assert n_packed == n_single
    assert loss_packed.item() == pytest.approx(loss_single.item(), rel=1e-5)
    assert loss_packed.item() == pytest.approx(sum(alone).item(), rel=1e-5)
    # Without restarting positions the examples would see each other: a different loss.
    batch = objective.collate(packed)
    batch["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
    with torch.no_grad():
        assert objective.loss(model, batch)[0].item() != pytest.approx(loss_packed.item())


def test_held_out_split_when_no_validation_file(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", sft_rows())
    cfg = SftConfig(train_file=str(path), validation_fraction=0.25)
    splits = sft.load_splits(cfg, seed=1)
    assert len(splits["validation"]) == 5 and len(splits["train"]) == 15
    assert not {e.where for e in splits["validation"]} & {e.where for e in splits["train"]}
    assert sft.load_splits(cfg, seed=1) == splits
    assert sft.load_validation(cfg, seed=1) == splits["validation"]  # what evaluate reads


def test_every_assistant_turn_is_a_target(tokenizer):
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Colour of lime?"},
        {"role": "assistant", "content": "green"},
        {"role": "user", "content": "And plum?"},
        {"role": "assistant", "content": "purple"},
        {"role": "user", "content": "Thanks"},  # nothing to learn after the last answer
    ]
    example = sft.Example("x:1", messages=tuple(chat))
    ids, labels = sft.tokenize(example, tokenizer)
    eos = tokenizer.eos_token
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(chat[:5], tokenize=False)
    runs, run = [], []
    for i, label in zip(ids, labels, strict=True):
        if label != IGNORE:
            run.append(i)
        elif run:
            runs, run = [*runs, run], []
    assert [tokenizer.decode(r) for r in [*runs, run] if r] == [f"green{eos}", f"purple{eos}"]
    # Generation starts where the last answer would: after the template's generation prompt.
    start = sft.prompt(example, tokenizer, max_length=512)
    assert start.reference == "purple"
    assert start.text == tokenizer.apply_chat_template(
        chat[:4], tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.decode(start.ids) == start.text


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('{"prompt": "a", "response": "b"}\n{"prompt": "c"}\n', 2, "a prompt without a response"),
        ('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": ""}\n', 2, "without a"),
        ('{"prompt": "a", "response": "b"}\n{"prompt": "c", \n', 2, "not a JSON object"),
        ("\n\n", None, "the file is empty"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n', 1, "no assistant turn"),
        ('{"messages": [{"role": "user"}]}\n', 1, "messages[0] needs 'role' and 'content'"),
        ('{"text": "a"}\n', 1, "no 'prompt' or 'messages' field"),
        ("[1, 2]\n", 1, "not a JSON object"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        sft.read_examples(path, SftConfig())
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(error.value).startswith(where) and message in str(error.value)
    assert "\n" not in str(error.value)
