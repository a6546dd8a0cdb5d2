"""Error-rate statistics: Wilson intervals, one-sided binomial tests, Benjamini-Hochberg.

All functions are vectorised over arrays of (failures, support) so a diagnosis
can score thousands of slices and regions in one call.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .results import Interval


def wilson_interval(failures: np.ndarray, support: np.ndarray,
                    confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of failures / support, elementwise.

    Wilson rather than the normal approximation because small, nearly pure
    slices (error rate close to 1) are exactly what we report.
    """
    k = np.asarray(failures, dtype=np.float64)
    n = np.asarray(support, dtype=np.float64)
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds of 0 of n and n of n are exactly 0 and 1 (rounding leaves 1e-17 off them).
    low = np.where((n > 0) & (k > 0), np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where((n > 0) & (k < n), np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high


def interval(failures: int, support: int, confidence: float = 0.95) -> Interval:
    """Wilson interval of one proportion as an Interval."""
    low, high = wilson_interval(np.array([failures]), np.array([support]), confidence)
    return Interval(float(low[0]), float(high[0]))


def excess_error_p_values(failures: np.ndarray, support: np.ndarray, baseline: float) -> np.ndarray:
    """One-sided exact binomial p-values of P(X >= failures) for X ~ Bin(support, baseline).

    One-sided because we only report where the model is worse than usual.
    """
    k = np.asarray(failures, dtype=np.float64)
    n = np.asarray(support, dtype=np.float64)
    if baseline <= 0.0:
        return np.where(k > 0, 0.0, 1.0)
    if baseline >= 1.0:
        return np.ones_like(k)
    return np.clip(stats.binom.sf(k - 1, n, baseline), 0.0, 1.0)


def enrichment_p_values(overlap: np.ndarray, slice_support: np.ndarray, group_size: int,
                        population: int) -> np.ndarray:
    """One-sided hypergeometric p-values that a slice holds more of a group than chance."""
    k = np.asarray(overlap, dtype=np.float64)
    return np.clip(stats.hypergeom.sf(k - 1, population, group_size,
                                      np.asarray(slice_support, dtype=np.float64)), 0.0, 1.0)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), same order as the input."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    # Step-up: each q is the smallest adjusted value at or above its rank.
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.clip(q_sorted, 0.0, 1.0)
    return q
