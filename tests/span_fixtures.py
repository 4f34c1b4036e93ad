"""Tiny files for token classification and extractive QA (written by the tests).

NER: CoNLL-2003's layout (-DOCSTART-, four columns `token POS chunk tag`, IOB2 tags) and jsonl
with configurable field names. SQuAD: v1.1 / v2.0 JSON whose contexts are long enough to be cut
into several windows at the tests' tiny `task.max_length`, answers placed all along them.
"""

from __future__ import annotations

import json
from pathlib import Path

PEOPLE = [["John", "Smith"], ["Mary"], ["Peter", "Jones"], ["Anna"], ["Olga", "Berg"]]
PLACES = [["Paris"], ["New", "York"], ["Berlin"], ["Tokyo"], ["Rio", "de", "Janeiro"]]
ORGS = [["Acme", "Corp"], ["Globex"], ["Initech"], ["Bank", "of", "Spain"]]


def _entity(words: list[str], kind: str) -> list[tuple[str, str]]:
    return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)]


def sentence(i: int) -> list[tuple[str, str]]:
    """A tagged sentence, one of three patterns, entities varying with i."""
    per = _entity(PEOPLE[i % len(PEOPLE)], "PER")
    loc = _entity(PLACES[(i // 2) % len(PLACES)], "LOC")
    org = _entity(ORGS[(i // 3) % len(ORGS)], "ORG")
    o = [(w, "O") for w in ("lives", "in", "works", "for", "opened", "an", "office", ".")]
    patterns = [
        per + o[:2] + loc + o[7:],
        per + o[2:4] + org + o[1:2] + loc + o[7:],
        org + o[4:7] + o[1:2] + loc + o[7:],
    ]
    return patterns[i % 3]


LONG = sentence(1) * 8  # 72 words: longer than the runs' task.max_length=32


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for tagged in sentences:
        lines += [f"{w} NNP B-NP {t}" for w, t in tagged] + [""]
    path.write_text("\n".join(lines))
    return path


def write_tag_jsonl(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    rows = [{"words": [w for w, _ in s], "labels": [t for _, t in s]} for s in sentences]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


FILLER = "the weather was mild and the streets were quiet that year ."


def paragraph(i: int, v2: bool) -> dict:
    """A context of five facts with filler between them, and a question on each fact (for v2
    also one it cannot answer)."""
    people = [PEOPLE[(i + k) % len(PEOPLE)] for k in range(5)]
    places = [PLACES[(i + 2 * k) % len(PLACES)] for k in range(5)]
    context, qas = "", []
    for k, (person, place) in enumerate(zip(people, places, strict=True)):
        name, where = " ".join(person), " ".join(place)
        fact = f"{name} moved to {where} in spring ."
        start = len(context) + len(name) + len(" moved to ")
        question = f"where did {name} move to ?"
        answers = [{"text": where, "answer_start": start}]
        if k == 0:  # a second gold answer, as dev files have
            answers.append({"text": where + " in spring", "answer_start": start})
        qas.append({"id": f"q{i}-{k}", "question": question, "answers": answers})
        context += fact + " " + FILLER + " "
    if v2:
        qas.append(
            {
                "id": f"q{i}-none",
                "question": "where did Zed Quill move to ?",
                "answers": [],
                "is_impossible": True,
            }
        )
    return {"context": context.strip(), "qas": qas}


# The two SQuAD tasks, in the order a sweep over both numbers its jobs.
SQUAD_TASKS = ["squad", "squad_v2"]


def write_squad(path: Path, n: int, v2: bool = False, offset: int = 0) -> Path:
    data = {
        "version": "v2.0" if v2 else "1.1",
        "data": [
            {"title": f"article {i}", "paragraphs": [paragraph(i, v2)]}
            for i in range(offset, offset + n)
        ],
    }
    path.write_text(json.dumps(data))
    return path
