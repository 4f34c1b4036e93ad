"""llmtrain.tasks.squad: windows over long contexts, choosing the answer across windows, and bad
data named by file and question."""

from __future__ import annotations

import json

import datasets
import pytest

from llmtrain.config import Family, TokenizerConfig
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.errors import DataError
from llmtrain.tasks.squad import OUTSIDE, Window, best_answer, encode_squad, read_squad

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
