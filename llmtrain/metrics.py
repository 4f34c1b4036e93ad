"""Task metrics from well-kept libraries (scikit-learn, scipy), and perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


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
