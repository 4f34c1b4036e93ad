"""Task metrics from well-kept libraries (scikit-learn, scipy, seqeval, rouge-score), SQuAD's
exact match and F1 (no offline library offers them), and perplexity."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from llmtrain.errors import ConfigError


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 80 else math.inf


def task_metrics(
    names: Sequence[str], predictions: Sequence, references: Sequence
) -> dict[str, float]:
    """The named metrics of predictions against references (class ids, or floats for
    regression). F1 is binary F1 of class 1, as GLUE reports it for MRPC and QQP."""
    # Imported here, as seqeval and rouge-score below are: a command that never scores a task
    # (pretraining, every config mistake) would spend 0.7 s of its start importing them.
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds, refs = np.asarray(predictions), np.asarray(references)
    compute = {
        "accuracy": lambda: accuracy_score(refs, preds),
        "f1": lambda: f1_score(refs, preds, zero_division=0.0),
        "mcc": lambda: matthews_corrcoef(refs, preds),
        "pearson": lambda: _correlation(pearsonr, preds, refs),
        "spearman": lambda: _correlation(spearmanr, preds, refs),
    }
    return {name: float(compute[name]()) for name in names}


def _correlation(fn, preds: np.ndarray, refs: np.ndarray) -> float:
    if len(preds) < 2 or np.std(preds) == 0 or np.std(refs) == 0:
        return 0.0  # undefined for constant input: report no correlation
    return float(fn(preds, refs)[0])


def tagging_metrics(gold: list[list[str]], pred: list[list[str]], scheme: str) -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval; strict in the given scheme, or lenient as
    conlleval) and the share of words tagged right."""
    from seqeval import metrics
    from seqeval import scheme as schemes

    mode = {} if scheme == "conlleval" else {"mode": "strict", "scheme": getattr(schemes, scheme)}
    scores = {
        name: float(fn(gold, pred, zero_division=0, **mode))
        for name, fn in (
            ("precision", metrics.precision_score),
            ("recall", metrics.recall_score),
            ("f1", metrics.f1_score),
        )
    }
    pairs = [(g, p) for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)]
    scores["accuracy"] = sum(g == p for g, p in pairs) / max(len(pairs), 1)
    return scores


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_metrics(
    answers: dict[str, str], golds: dict[str, list[str]], v2: bool = False
) -> dict[str, float]:
    """Exact match and token F1 of each answer against its best gold answer (an empty gold list
    means unanswerable: only the empty answer scores), as fractions; for SQuAD 2.0 (`v2`) also
    over the answerable (has_ans_*) and the unanswerable (no_ans_*) questions, where there are
    any. The formulas are those of the official SQuAD evaluation scripts."""
    exact, f1 = {}, {}
    for qid, answer in answers.items():
        # Gold answers that normalise to nothing do not count (as in the SQuAD 2.0 script).
        references = [g for g in golds[qid] if normalize_answer(g)] or [""]
        exact[qid] = max(float(normalize_answer(answer) == normalize_answer(g)) for g in references)
        f1[qid] = max(_token_f1(answer, g) for g in references)
    scores = _means(exact, f1, list(answers), "")
    if v2:
        for prefix, answerable in (("has_ans_", True), ("no_ans_", False)):
            ids = [qid for qid in answers if bool(golds[qid]) is answerable]
            if ids:
                scores |= _means(exact, f1, ids, prefix)
    return scores


_PUNCTUATION = set(string.punctuation)


def _token_f1(answer: str, gold: str) -> float:
    pred, ref = normalize_answer(answer).split(), normalize_answer(gold).split()
    if not pred or not ref:  # unanswerable: right only if both are empty
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _means(exact: dict, f1: dict, ids: list[str], prefix: str) -> dict[str, float]:
    n = max(len(ids), 1)
    return {
        f"{prefix}exact": sum(exact[i] for i in ids) / n,
        f"{prefix}f1": sum(f1[i] for i in ids) / n,
    }


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (rouge-score's defaults: lower-cased alphanumeric tokens, no
    stemming) of each prediction against its reference."""
    try:
        from rouge_score.rouge_scorer import RougeScorer
        from rouge_score.tokenizers import DefaultTokenizer
    except ImportError:
        raise ConfigError(
            "task.rouge=true needs the rouge-score package: pip install 'llmtrain[rouge]'"
        ) from None
    scorer = RougeScorer(["rougeL"], tokenizer=DefaultTokenizer(use_stemmer=False))
    scores = [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    return float(np.mean(scores)) if scores else 0.0
