"""Extractive QA: SQuAD's metric on hand-computed cases, windows over long contexts, choosing
the answer across windows, bad data, and `task=squad` / `task=squad_v2` runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from conftest import FT_TINY, read_metrics, run_cli
from span_fixtures import write_squad

from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.errors import DataError
from llmtrain.metrics import normalize_answer, squad_metrics
from llmtrain.tasks.squad import OUTSIDE, Window, best_answer, encode_squad, read_squad

TASKS = ["squad", "squad_v2"]


def test_normalisation_and_scores_by_hand():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum") == "apple pear and plum"
    scores = squad_metrics(
        {"a": "the Eiffel Tower", "b": "Paris France", "c": "", "d": "the cat the cat sat"},
        {"a": ["Eiffel Tower"], "b": ["Paris", "in France"], "c": ["x y"], "d": ["cat sat sat"]},
    )
    # a: exact; b: best of F1 2/3 ("paris") and 1/2 ("in france"); c: nothing right;
    # d: 2 tokens in common of 3 and 3 -> F1 2/3.
    assert scores == pytest.approx({"exact": 1 / 4, "f1": (1 + 2 / 3 + 0 + 2 / 3) / 4})
    v2 = squad_metrics(
        {"a": "Paris", "n1": "", "n2": "Rome", "n3": "the"},
        {"a": ["Paris", "the"], "n1": [], "n2": [], "n3": []},
        v2=True,
    )
    # A gold answer that normalises to nothing ("the") is dropped; "the" as an answer to an
    # unanswerable question normalises to the empty answer and is right.
    assert v2 == pytest.approx(
        {
            "exact": 3 / 4,
            "f1": 3 / 4,
            "has_ans_exact": 1.0,
            "has_ans_f1": 1.0,
            "no_ans_exact": 2 / 3,
            "no_ans_f1": 2 / 3,
        }
    )


# Hand-made windows over one context: a question and three specials (OUTSIDE) around four
# context words; the two windows share "gamma delta".
CONTEXT = "alpha beta gamma delta epsilon zeta"
SPANS = {"alpha": [0, 5], "beta": [6, 10], "gamma": [11, 16], "delta": [17, 22]}
SPANS |= {"epsilon": [23, 30], "zeta": [31, 35]}
W0 = [OUTSIDE] * 3 + [SPANS[w] for w in ("alpha", "beta", "gamma", "delta")] + [OUTSIDE]
W1 = [OUTSIDE] * 3 + [SPANS[w] for w in ("gamma", "delta", "epsilon", "zeta")] + [OUTSIDE]


def _answer(w0, w1, max_answer_length=30, null_threshold=None, nulls=(0.0, 0.0)) -> str:
    windows = [Window(W0, *w0, nulls[0]), Window(W1, *w1, nulls[1])]
    return best_answer(CONTEXT, windows, max_answer_length, null_threshold)


def test_post_processing_across_windows():
    # The best start (beta, window 0) and best end (zeta, window 1) never make one span.
    assert _answer(([(4, 5.0)], [(4, 0.0)]), ([(3, 0.0)], [(6, 4.5)])) == "beta"
    # An answer cut by window 0's end ("delta epsilon") is taken whole from window 1.
    assert _answer(([(6, 4.0)], [(6, 1.0)]), ([(4, 3.0)], [(5, 3.0)])) == "delta epsilon"
    # The same words in the overlap map to the same text from either window.
    assert _answer(([(5, 3.0)], [(6, 3.0)]), ([(3, 1.0)], [(4, 1.0)])) == "gamma delta"
    assert _answer(([(5, 1.0)], [(6, 1.0)]), ([(3, 3.0)], [(4, 3.0)])) == "gamma delta"
    # Question tokens and specials (high scores) are never part of an answer; nor end < start.
    assert _answer(([(1, 99.0), (4, 1.0)], [(2, 99.0), (3, 9.0), (4, 1.0)]), ([], [])) == "beta"
    # At most max_answer_length tokens: gamma..zeta (4 tokens) loses to gamma..delta.
    w1 = ([(3, 5.0)], [(6, 5.0), (4, 1.0)])
    assert _answer(([], []), w1) == "gamma delta epsilon zeta"
    assert _answer(([], []), w1, max_answer_length=3) == "gamma delta"
    # SQuAD 2.0: nothing when the lowest null score beats the best span (6) by the threshold.
    span = (([(6, 4.0)], [(6, 1.0)]), ([(4, 3.0)], [(5, 3.0)]))
    assert _answer(*span, null_threshold=0.0, nulls=(8.0, 3.0)) == "delta epsilon"
    assert _answer(*span, null_threshold=0.0, nulls=(8.0, 7.0)) == ""
    assert _answer(*span, null_threshold=2.0, nulls=(8.0, 7.0)) == "delta epsilon"


@pytest.fixture(scope="module")
def squad_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("squad")
    for task in TASKS:
        write_squad(d / f"{task}-train.json", 8, v2=task == "squad_v2")
        write_squad(d / f"{task}-dev.json", 3, v2=task == "squad_v2", offset=8)
    return d


def test_windows_overlap_and_locate_answers(squad_files, tmp_path):
    examples = read_squad(squad_files / "squad-train.json", v2=False)
    text = list(examples["question"]) + list(examples["context"])
    tokenizer = build_tokenizer(
        TokenizerConfig(vocab_size=300, min_frequency=1),
        Family.bert,
        datasets.Dataset.from_dict({"text": text}),
        tmp_path,
        max_length=512,
    )
    features = encode_squad(examples, tokenizer, max_length=48, doc_stride=16)
    assert max(len(ids) for ids in features["input_ids"]) == 48
    found, cut = set(), 0
    for i, f in enumerate(features):
        example = examples[f["example"]]
        start, answer = example["starts"][0], example["answers"][0]
        inside = [o for o in f["offsets"] if o != OUTSIDE]
        s, e = f["labels"]
        if (s, e) != (0, 0):  # the labelled tokens spell the answer
            assert example["context"][f["offsets"][s][0] : f["offsets"][e][1]] == answer
            found.add(f["example"])
        else:  # a window that cuts the answer at either end does not hold it
            end = start + len(answer)
            cut += inside[0][0] <= start < inside[-1][1] < end or start < inside[0][0] < end
        nxt = features[i + 1] if i + 1 < len(features) else None
        if nxt is not None and nxt["example"] == f["example"]:  # consecutive windows share 16
            assert [o for o in nxt["offsets"] if o != OUTSIDE][:16] == inside[-16:]
    assert found == set(range(len(examples))) and cut > 0
    assert len(features) > 2 * len(examples)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda qa: qa["answers"][0].update(answer_start=qa["answers"][0]["answer_start"] + 1),
            "question 'q0-0': answer 'Paris' is not at answer_start=21 of its context "
            "(there: 'aris ')",
        ),
        (
            lambda qa: qa.update(answers=[], is_impossible=True),
            "question 'q0-0' has no answer; task=squad needs one for every question",
        ),
        (lambda qa: qa.pop("question"), "question 'q0-0': no 'question'"),
        (lambda qa: qa.update(id="q0-1"), "question 'q0-1': the id is used twice"),
    ],
)
def test_bad_squad_data_names_file_and_question(squad_files, tmp_path, edit, message):
    data = json.loads((squad_files / "squad-train.json").read_text())
    edit(data["data"][0]["paragraphs"][0]["qas"][0])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as error:
        read_squad(path, v2=False)
    assert str(error.value).startswith(f"{path}: {message}") and "\n" not in str(error.value)


def test_bad_answer_stops_the_cli_with_one_line(squad_files, cache_dir, tmp_path):
    data = json.loads((squad_files / "squad-dev.json").read_text())
    data["data"][1]["paragraphs"][0]["qas"][2]["answers"][0]["text"] = "Lisbon"
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps(data))
    args = ["finetune", "task=squad", f"task.train_file={squad_files / 'squad-train.json'}"]
    result = run_cli([*args, f"task.validation_file={dev}", f"hydra.run.dir={tmp_path}"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llmtrain finetune: error: {dev}: question 'q9-2': answer 'Lisbon' is not at "
        "answer_start=221 of its context (there: 'Tokyo ')"
    ]


@pytest.fixture(scope="module")
def squad_sweep(squad_files, cache_dir, tmp_path_factory) -> Path:
    """Both tasks fine-tuned in one multirun: windows of 48 tokens sharing 16."""
    sweep = tmp_path_factory.mktemp("squad-sweep")
    args = [
        "finetune",
        "-m",
        f"task={','.join(TASKS)}",
        f"task.train_file={squad_files}/${{task.name}}-train.json",
        f"task.validation_file={squad_files}/${{task.name}}-dev.json",
        "task.max_length=48",
        "task.doc_stride=16",
        *FT_TINY,
        "trainer.lr=3e-3",
        "trainer.max_steps=12",
        "trainer.batch_size=16",
        "trainer.log_every=4",
        "trainer.eval_every=6",
        "trainer.save_every=12",
    ]
    result = run_cli([*args, f"hydra.sweep.dir={sweep}"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.mark.parametrize("task", TASKS)
def test_squad_run_end_to_end(squad_sweep, squad_files, task):
    run = squad_sweep / str(TASKS.index(task))
    evals = [r for r in read_metrics(run) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 6, 12]
    assert evals[-1]["loss"] < evals[0]["loss"]  # it learns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == task and summary["main_metric"] == "f1"
    # The reported scores are SQuAD's formula on the written answers against the dev file.
    answers = json.loads((run / "predictions" / "validation.json").read_text())
    dev = json.loads((squad_files / f"{task}-dev.json").read_text())
    golds = {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for article in dev["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    }
    assert set(answers) == set(golds)
    expected = squad_metrics(answers, golds, v2=task == "squad_v2")
    keys = ["exact", "f1"] + (["has_ans_f1", "no_ans_f1"] if task == "squad_v2" else [])
    assert set(keys) <= set(expected)
    for key, value in expected.items():
        assert summary[f"best_{key}"] == pytest.approx(value, abs=1e-12), key


def test_final_reloads_and_evaluate_reproduces_the_run(
    squad_sweep, squad_files, cache_dir, tmp_path
):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    run = squad_sweep / "1"  # squad_v2
    model = AutoModelForQuestionAnswering.from_pretrained(run / "final")
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    batch = tokenizer(
        "where did Mary move to ?", "Mary moved to Berlin in spring .", return_tensors="pt"
    )
    with torch.no_grad():
        out = model(**batch)
    assert out.start_logits.shape == out.end_logits.shape == batch["input_ids"].shape
    out_dir = tmp_path / "eval"
    args = [
        "evaluate",
        "task=squad_v2",
        f"task.validation_file={squad_files / 'squad_v2-dev.json'}",
        "task.max_length=48",
        "task.doc_stride=16",
        f"model.from_run={run}",
        "trainer.batch_size=16",
    ]
    result = run_cli([*args, f"hydra.run.dir={out_dir}"], cache_dir)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((out_dir / "summary.json").read_text())
    trained = json.loads((run / "summary.json").read_text())
    for key in ("f1", "exact", "no_ans_f1", "loss"):
        assert evaluated[key] == pytest.approx(trained[f"best_{key}"]), key
    assert (out_dir / "predictions" / "validation.json").read_text() == (
        run / "predictions" / "validation.json"
    ).read_text()
