"""Per-class quality of a run: the view every evaluation starts from, beside the regions.

For each class with test rows: its support, failures (by the diagnosis's failure definition),
error rate with a Wilson interval, lift and excess errors over the whole test set's error rate,
and a one-sided binomial test of "this class fails more often than the test set" whose q-values
are Benjamini-Hochberg adjusted within the classes (a family of its own, apart from the regions'
and slices'); precision, recall and F1 of the model's predictions for it; and the prediction its
wrong rows get most often. Classes with no test rows but predictions (precision only) are kept,
so a class the model predicts for rows of others shows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import Interval
from .significance import benjamini_hochberg, excess_error_p_values, wilson_interval


@dataclass(frozen=True)
class ClassStat:
    label: int
    support: int                 # test rows given this label
    failures: int                # of them, failures
    error_rate: float            # failures / support (NaN without support)
    ci: Interval
    lift: float                  # error_rate / the test set's
    excess_errors: float         # failures - support x the test set's error rate
    p_value: float
    q_value: float
    predicted: int               # test rows predicted as this class
    precision: float             # of those, given this label (NaN when none is predicted so)
    recall: float                # of the rows given this label, predicted so (NaN without support)
    f1: float                    # NaN without support; 0 when never predicted so
    top_confusion: int           # the prediction this class's wrong rows get most often (-1: none)
    top_confusion_count: int


def class_stats(labels: np.ndarray, predicted: np.ndarray, failed: np.ndarray, num_classes: int
                ) -> list[ClassStat]:
    """One ClassStat per class that has test rows or predictions, worst first (excess errors,
    then label)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    failed = np.asarray(failed, dtype=bool)
    k = max(int(num_classes), int(labels.max(initial=-1)) + 1, int(predicted.max(initial=-1)) + 1)
    n = len(labels)
    if n == 0 or k == 0:
        return []
    support = np.bincount(labels, minlength=k)
    failures = np.bincount(labels[failed], minlength=k)
    right = labels == predicted
    hits = np.bincount(labels[right], minlength=k)
    as_class = np.bincount(predicted, minlength=k)
    baseline = float(failed.sum()) / n
    present = np.flatnonzero((support > 0) | (as_class > 0))
    low, high = wilson_interval(failures[present], support[present])
    p = excess_error_p_values(failures[present], support[present], baseline)
    p = np.where(support[present] > 0, p, 1.0)
    q = benjamini_hochberg(p)
    wrong = ~right
    # The most frequent wrong prediction per class, from the pairs that occur (no k x k table).
    codes, counts = np.unique(labels[wrong] * k + predicted[wrong], return_counts=True)
    top = {}
    for code, count in sorted(zip(codes.tolist(), counts.tolist()), key=lambda cc: (-cc[1], cc[0])):
        top.setdefault(code // k, (code % k, count))
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, c in enumerate(present.tolist()):
            s, f = int(support[c]), int(failures[c])
            rate = f / s if s else float("nan")
            precision = hits[c] / as_class[c] if as_class[c] else float("nan")
            recall = hits[c] / s if s else float("nan")
            # As scikit-learn's f1_score: 0 where the class is never predicted or never right.
            f1 = (float("nan") if not s else 0.0 if not as_class[c] or precision + recall == 0
                  else 2 * precision * recall / (precision + recall))
            confused, count = top.get(c, (-1, 0))
            out.append(ClassStat(
                label=c, support=s, failures=f, error_rate=rate, ci=Interval(float(low[i]), float(high[i])),
                lift=rate / baseline if s and baseline > 0 else float("nan"), excess_errors=f - s * baseline,
                p_value=float(p[i]), q_value=float(q[i]), predicted=int(as_class[c]), precision=float(precision),
                recall=float(recall), f1=float(f1), top_confusion=int(confused), top_confusion_count=int(count)))
    out.sort(key=lambda st: (-st.excess_errors, st.label))
    return out
