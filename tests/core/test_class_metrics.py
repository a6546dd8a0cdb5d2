"""Per-class statistics: precision, recall and F1 as scikit-learn computes them, error rates with
intervals and a test within the classes' own family, worst first."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from blindspots_server.core.class_metrics import class_stats


def test_class_stats_match_scikit_learn_and_find_the_class_that_fails():
    rng = np.random.default_rng(0)
    n, k = 3000, 5
    labels = rng.integers(0, k, n)
    predicted = labels.copy()
    noise = rng.random(n) < 0.05
    predicted[noise] = rng.integers(0, k, noise.sum())
    bad = (labels == 3) & (rng.random(n) < 0.4)              # class 3 read as 1, 40% of the time
    predicted[bad] = 1
    stats = class_stats(labels, predicted, labels != predicted, k)
    assert [s.label for s in stats][0] == 3                    # worst first
    by = {s.label: s for s in stats}
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=range(k),
                                                                     zero_division=0)
    for c in range(k):
        assert by[c].support == support[c]
        assert math.isclose(by[c].precision, precision[c]) and math.isclose(by[c].recall, recall[c])
        assert math.isclose(by[c].f1, f1[c])
        assert by[c].failures == int(((labels == c) & (labels != predicted)).sum())
        assert by[c].ci.low <= by[c].error_rate <= by[c].ci.high
    assert by[3].q_value < 1e-6
    assert (by[3].top_confusion, by[3].top_confusion_count) == (1, int(((labels == 3) & (predicted == 1)).sum()))
    assert all(by[c].q_value > 0.05 for c in (0, 2, 4))         # ordinary classes are not flagged
    base = (labels != predicted).mean()
    assert math.isclose(by[3].excess_errors, by[3].failures - by[3].support * base)
    assert math.isclose(by[3].lift, by[3].error_rate / base)


def test_a_class_only_predicted_and_one_never_predicted():
    labels = np.array([0, 0, 0, 1, 1, 1])
    predicted = np.array([0, 0, 2, 0, 0, 0])                   # class 2 has no rows; class 1 is never predicted
    by = {s.label: s for s in class_stats(labels, predicted, labels != predicted, 3)}
    assert by[2].support == 0 and by[2].predicted == 1 and by[2].precision == 0.0
    assert math.isnan(by[2].recall) and math.isnan(by[2].f1) and math.isnan(by[2].error_rate)
    assert by[2].p_value == 1.0 and by[2].excess_errors == 0
    assert by[1].predicted == 0 and math.isnan(by[1].precision) and by[1].recall == 0.0 and by[1].f1 == 0.0
    assert (by[1].top_confusion, by[1].top_confusion_count) == (0, 3)
    assert class_stats(np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool), 3) == []


def test_failures_follow_the_diagnosis_s_definition_not_only_wrong_predictions():
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([0, 0, 1, 0])
    failed = np.array([True, False, False, True])             # a top-loss definition: row 0 is right, yet failed
    by = {s.label: s for s in class_stats(labels, predicted, failed, 2)}
    assert (by[0].failures, by[0].recall) == (1, 1.0) and (by[1].failures, by[1].recall) == (1, 0.5)
