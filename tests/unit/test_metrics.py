"""llmtrain.metrics: SQuAD's metric on hand-computed cases, and the tagging scheme deciding what
an entity is."""

from __future__ import annotations

import pytest

from llmtrain.metrics import normalize_answer, squad_metrics, tagging_metrics


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


def test_scheme_decides_what_an_entity_is():
    gold, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    # conlleval lets I- open an entity; strict IOB2 does not, so the prediction finds none.
    assert tagging_metrics(gold, pred, "conlleval") == pytest.approx(
        {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 2 / 3}
    )
    assert tagging_metrics(gold, pred, "IOB2") == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 2 / 3}
    )
    iobes = [["S-PER", "O", "B-LOC", "E-LOC"]]
    assert tagging_metrics(iobes, iobes, "IOBES")["f1"] == 1.0
