"""Class confusions that no failure region holds, as extra targets for the targeted strategy.

A class-pair confusion ("3s drawn like 8s") often forms no significant region:
its rows sit among each other, labelled alike, so the label-neighbourhood
candidates miss it, and the cluster around it takes in so many correct rows of
the class that its held-out test fails. Its failures then stay outside every
region, where the targeted strategy never looks, while margin sampling, the
strongest general baseline, finds the pair's boundary in the pool.

Here the failures outside every region are grouped by (given label, prediction).
A pair holding at least ``min_failures`` of them, more than the off-region error
rate spread evenly over the wrong classes would give, becomes a target: its
failures are the ones to collect near, its excess errors (failures minus that
expectation) size its share like a region's. These targets are descriptive, not
tested regions (the grouping reads the model's predictions, which define the
failures): the diagnosis lists them apart from its regions, and a pick made for
one says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A pair is a target when it holds at least this share of the test set's failures
# (and at least MIN_FAILURES): the Diagnoser's smallest cluster is 5% of the clustered failures.
MIN_SHARE = 0.05
MIN_FAILURES = 10


@dataclass(frozen=True)
class UnheldConfusion:
    """Failures outside every region, given label ``given``, predicted ``predicted``."""

    given: int
    predicted: int
    rows: np.ndarray            # their test row indices
    excess_errors: float        # failures minus the off-region expectation


def unheld_confusions(labels: np.ndarray, predicted: np.ndarray, failed: np.ndarray,
                      region_of_sample: np.ndarray, num_classes: int | None = None,
                      min_share: float = MIN_SHARE, min_failures: int = MIN_FAILURES) -> list[UnheldConfusion]:
    """The (given, predicted) pairs of the failures no region holds that qualify as targets,
    largest excess first (ties by pair)."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    failed = np.asarray(failed, dtype=bool)
    outside = np.asarray(region_of_sample) < 0
    k = int(num_classes or max(int(labels.max(initial=0)), int(predicted.max(initial=0))) + 1)
    # Failures the model got right (a top-loss failure definition) confuse nothing.
    loose = failed & outside & (labels != predicted)
    if k < 2 or not loose.any():
        return []
    floor = max(min_failures, int(np.ceil(min_share * failed.sum())))
    rate = float(loose.sum()) / max(int(outside.sum()), 1)
    per_class = np.bincount(labels[outside], minlength=k)
    # Pairs that occur, not a k x k table: with 10^5 classes that would be 10^10 counters.
    codes, counts = np.unique(labels[loose] * k + predicted[loose], return_counts=True)
    out = []
    for code, count in zip(codes[counts >= floor].tolist(), counts[counts >= floor].tolist()):
        a, b = divmod(int(code), k)
        excess = float(count) - per_class[a] * rate / (k - 1)
        if excess > 0:
            rows = np.flatnonzero(loose & (labels == a) & (predicted == b))
            out.append(UnheldConfusion(a, b, rows, excess))
    out.sort(key=lambda c: (-c.excess_errors, c.given, c.predicted))
    return out
