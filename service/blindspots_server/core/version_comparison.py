"""Two model versions on the same test set: which failure regions were fixed, which
remain, which are new, and how each slice's error rate moved.

``VersionComparer(min_overlap=0.25).fit(region_a, region_b, failed_a, failed_b, slices)``
takes per-row arrays over the rows both versions were evaluated on (aligned by
sample id) and returns a ``VersionComparison``.

- Regions are matched one-to-one by the Jaccard overlap of their member rows
  (greedy, largest overlap first, at least ``min_overlap``): a matched region of
  A *remains*; an unmatched one is *fixed* when B's error rate on its rows is
  significantly lower, and *remains* otherwise (B's clustering did not find it
  again, but its rows still fail about as often); a region of B matched by no
  region of A is *new*.
- Each class (the shared rows given that label, where both runs give it) is compared
  like a slice, in the slices' family (a class is a slice of the labels).
- Every comparison of error rates is on the same rows under both versions, a
  paired design: McNemar's test (exact, mid-p: the rows one version gets wrong
  and the other right, split about evenly when the rates are equal) and
  Newcombe's hybrid score interval for the difference B - A of paired
  proportions (Wilson intervals of each rate, combined with the correlation of
  the two versions' failures). Fagerland, Lydersen and Laake (2013, 2014)
  recommend both for paired binomial data. Two versions fail mostly on the
  same rows, so this is much stronger than treating them as independent
  samples (the pooled z-test used before: a difference it called significant
  is one, but it missed many).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .results import Interval
from .significance import benjamini_hochberg, wilson_interval

FIXED, REMAINS, NEW = "fixed", "remains", "new"


@dataclass
class RateChange:
    """Error rates of one group of rows under versions A and B."""

    support: int
    failures_a: int
    failures_b: int
    error_rate_a: float
    ci_a: Interval
    error_rate_b: float
    ci_b: Interval
    difference: float                  # B - A
    difference_ci: Interval            # Newcombe's hybrid score interval for paired proportions
    p_value: float                     # two-sided, McNemar's exact mid-p test


@dataclass
class RegionChange:
    status: str                        # fixed | remains | new
    region_a: int                      # -1 for a new region
    region_b: int                      # -1 when no region of B matches
    jaccard: float
    rows: RateChange                   # on region_a's rows (region_b's for a new region)
    q_value: float = 1.0               # Benjamini-Hochberg over the compared regions


@dataclass
class SliceChange:
    name: str
    rows: RateChange
    q_value: float = 1.0               # Benjamini-Hochberg over the compared slices


@dataclass
class VersionComparison:
    num_shared: int
    overall: RateChange
    regions: list[RegionChange] = field(default_factory=list)
    slices: list[SliceChange] = field(default_factory=list)
    classes: list[SliceChange] = field(default_factory=list)


def mcnemar_mid_p(worse: int, better: int) -> float:
    """Two-sided mid-p of McNemar's exact test: ``worse`` rows B fails and A does not, ``better``
    the reverse; under equal error rates each such row is either with probability 1/2."""
    m = worse + better
    if m == 0:
        return 1.0
    low = min(worse, better)
    return float(min(1.0, 2 * (stats.binom.cdf(low, m, 0.5) - 0.5 * stats.binom.pmf(low, m, 0.5))))


def rate_change(failed_a: np.ndarray, failed_b: np.ndarray, confidence: float = 0.95) -> RateChange:
    """Error rates of the same rows under A and B, McNemar's mid-p test and Newcombe's paired
    interval for B - A (see the module doc)."""
    failed_a, failed_b = np.asarray(failed_a, bool), np.asarray(failed_b, bool)
    n = len(failed_a)
    ka, kb = int(np.sum(failed_a)), int(np.sum(failed_b))
    (la, lb), (ha, hb) = wilson_interval(np.array([ka, kb]), np.array([n, n]), confidence)
    pa, pb = (ka / n, kb / n) if n else (0.0, 0.0)
    diff = pb - pa
    both = int(np.sum(failed_a & failed_b))
    only_a, only_b = ka - both, kb - both
    neither = n - both - only_a - only_b
    # The correlation of the two versions' failures (0 when either is constant).
    spread = float(ka) * (n - ka) * kb * (n - kb)
    phi = (both * neither - only_a * only_b) / np.sqrt(spread) if spread > 0 else 0.0
    low = diff - np.sqrt(max((pb - lb) ** 2 - 2 * phi * (pb - lb) * (ha - pa) + (ha - pa) ** 2, 0.0))
    high = diff + np.sqrt(max((hb - pb) ** 2 - 2 * phi * (hb - pb) * (pa - la) + (pa - la) ** 2, 0.0))
    p_value = mcnemar_mid_p(only_b, only_a)
    return RateChange(n, ka, kb, pa, Interval(float(la), float(ha)), pb, Interval(float(lb), float(hb)),
                      float(diff), Interval(float(max(low, -1.0)), float(min(high, 1.0))), p_value)


class VersionComparer:
    """Matches failure regions of two versions and compares error rates on shared rows."""

    def __init__(self, min_overlap: float = 0.25, alpha: float = 0.05):
        if not 0 < min_overlap <= 1:
            raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.min_overlap = min_overlap
        self.alpha = alpha

    def fit(self, region_a: np.ndarray, region_b: np.ndarray, failed_a: np.ndarray, failed_b: np.ndarray,
            slices: list[tuple[str, np.ndarray]] = (), classes: list[tuple[str, np.ndarray]] = ()
            ) -> VersionComparison:
        """Returns (and stores in ``result_``) the comparison; arrays are per shared row,
        regions -1 where a row is in none, ``slices`` and ``classes`` (name, row mask) pairs."""
        region_a, region_b = np.asarray(region_a, np.int64), np.asarray(region_b, np.int64)
        failed_a, failed_b = np.asarray(failed_a, bool), np.asarray(failed_b, bool)
        n = len(region_a)
        if not (len(region_b) == len(failed_a) == len(failed_b) == n):
            raise ValueError("region_a, region_b, failed_a and failed_b must have one value per shared row")
        ids_a = sorted(int(r) for r in np.unique(region_a[region_a >= 0]))
        ids_b = sorted(int(r) for r in np.unique(region_b[region_b >= 0]))
        match = self._match(region_a, region_b, ids_a, ids_b)
        regions = []
        for r in ids_a:
            rows = region_a == r
            change = rate_change(failed_a[rows], failed_b[rows])
            if r in match:
                b, jac = match[r]
                regions.append(RegionChange(REMAINS, r, b, jac, change))
            else:
                fixed = change.difference < 0 and change.p_value < self.alpha
                regions.append(RegionChange(FIXED if fixed else REMAINS, r, -1, 0.0, change))
        matched_b = {b for b, _ in match.values()}
        for b in ids_b:
            if b not in matched_b:
                rows = region_b == b
                regions.append(RegionChange(NEW, -1, b, 0.0, rate_change(failed_a[rows], failed_b[rows])))
        changes = [SliceChange(name, rate_change(failed_a[mask], failed_b[mask])) for name, mask in slices
                   if mask.any()]
        per_class = [SliceChange(name, rate_change(failed_a[mask], failed_b[mask])) for name, mask in classes
                     if mask.any()]
        # Two families: the regions, and the slices with the classes (a class is a slice of the labels:
        # one family keeps the gate's false alarms where they were without classes).
        for family in (regions, changes + per_class):
            if family:
                q = benjamini_hochberg(np.array([c.rows.p_value for c in family]))
                for c, qv in zip(family, q):
                    c.q_value = float(qv)
        self.result_ = VersionComparison(n, rate_change(failed_a, failed_b), regions, changes, per_class)
        return self.result_

    def _match(self, region_a, region_b, ids_a, ids_b) -> dict[int, tuple[int, float]]:
        """Region of A -> (region of B, Jaccard), one-to-one, largest overlap first."""
        pairs = []
        for a in ids_a:
            in_a = region_a == a
            for b in ids_b:
                in_b = region_b == b
                union = int((in_a | in_b).sum())
                jac = int((in_a & in_b).sum()) / union if union else 0.0
                if jac >= self.min_overlap:
                    pairs.append((jac, a, b))
        out: dict[int, tuple[int, float]] = {}
        used_b: set[int] = set()
        for jac, a, b in sorted(pairs, key=lambda t: (-t[0], t[1], t[2])):
            if a not in out and b not in used_b:
                out[a] = (b, jac)
                used_b.add(b)
        return out
