"""A test set whose failures include a confusion that no failure region holds.

Ten classes with scattered ordinary errors (3%, any wrong class), one region (80 dense
failures at a spot of their own, which the Diagnoser finds) and 60 failures labelled 4 and
predicted 9 that it does not: 4s among the other 4s that the model reads as 9s (a data
gap), or, ``flipped``, ordinary 9s whose given label is 4 (label noise). The pool holds
ordinary rows of every class and 150 rows like the region's.
"""
from __future__ import annotations

import numpy as np

K, DIM = 10, 32
REGION_ROWS = np.arange(80)
PAIR_ROWS = np.arange(100, 160)


def confusion_world(seed: int, flipped: bool = False, n: int = 3000, pool_rows: int = 3000) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, DIM)) * 3.0
    true = rng.integers(0, K, n)
    x = centres[true] + rng.normal(size=(n, DIM))
    labels, predicted = true.copy(), true.copy()
    wrong = rng.random(n) < 0.03
    predicted[wrong] = (true[wrong] + rng.integers(1, K, wrong.sum())) % K
    spot = rng.normal(size=DIM) * 3.0
    x[REGION_ROWS] = spot + 0.3 * rng.normal(size=(len(REGION_ROWS), DIM))
    predicted[REGION_ROWS] = (labels[REGION_ROWS] + 1) % K
    true[PAIR_ROWS] = 9 if flipped else 4
    labels[PAIR_ROWS] = 4
    x[PAIR_ROWS] = centres[true[PAIR_ROWS]] + rng.normal(size=(len(PAIR_ROWS), DIM))
    predicted[PAIR_ROWS] = 9
    probs = np.full((n, K), 0.05 / (K - 1))
    probs[np.arange(n), predicted] = 0.95
    region = np.full(n, -1)
    region[REGION_ROWS] = 0
    pool = centres[rng.integers(0, K, pool_rows)] + rng.normal(size=(pool_rows, DIM))
    pool[:150] = spot + 0.3 * rng.normal(size=(150, DIM))
    ordinary_4_as_9 = np.flatnonzero(wrong & (labels == 4) & (predicted == 9))
    return dict(x=x.astype(np.float32), labels=labels, probs=probs, failed=labels != predicted,
                region=region, ids=np.array([f"t{i}" for i in range(n)]), pool=pool.astype(np.float32),
                pair_failures=np.union1d(PAIR_ROWS, ordinary_4_as_9), rng=rng)
