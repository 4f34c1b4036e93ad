"""Task metrics from well-kept libraries (scikit-learn, scipy, rouge-score), and perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from llmtrain.errors import ConfigError


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 80 else math.inf


def task_metrics(
    names: Sequence[str], predictions: Sequence, references: Sequence
) -> dict[str, float]:
    """The named metrics of predictions against references (class ids, or floats for
    regression). F1 is binary F1 of class 1, as GLUE reports it for MRPC and QQP."""
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
