"""Does the pool hold data like each region's failures?

Targeted suggestion picks the eligible pool rows nearest a region's failures, but nearest
is not near: when the pool has nothing like a region (the condition never reached the
unlabeled data, or earlier rounds used it up) its picks are the least far rows, and
labelling them fixes little. The remedy then is to collect new data like the failures.

Per region, the measure compares the failures' distance to their nearest eligible pool row
with the pool's own spacing:

- ``reach``: the 90th percentile, over a seeded sample of eligible pool rows, of each
  row's cosine distance to its nearest other eligible row. A failure drawn from the
  pool's own distribution has an eligible row within ``reach`` with probability about
  0.9 (its nearest-neighbour distance is distributed like a pool row's).
- ``covered``: the share of the region's failures (a seeded sample) that have an
  eligible pool row within ``reach``. A failure whose ``K`` nearest pool rows are all
  excluded (labeled, picked before, filtered out) counts as not covered.
- ``distance_ratio``: the failures' median distance to their nearest eligible row over
  the median spacing of the pool's rows (about 1 for failures like the pool's rows).

Failures drawn like the pool's rows have ``covered`` near 0.9 and ``distance_ratio`` near 1;
failures the pool holds nothing like, less and more. Real failures are atypical rows and score
lower even where the pool holds their kind, so these are measurements, not a verdict: on the
dev families no rule on them told a region whose condition was taken out of the pool from the
others well (bench/pool_coverage.py, bench/RESULTS.md#pool-coverage).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .pool_index import normalise
from .suggest_inputs import TargetRegion

SAMPLE = 500                # failures per region, and pool rows for the reach, at most (each a kNN query:
                            # at 1M x 128-d pool rows 500 + 3 x 500 queries take about 1 s)
K = 16                      # neighbours searched for the nearest eligible row
REACH_QUANTILE = 0.9

SearchFn = Callable[[np.ndarray, int], "tuple[np.ndarray, np.ndarray]"]
VectorsFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class RegionCoverage:
    region_id: int
    failures: int               # failures measured
    covered: float              # share of them with an eligible pool row within reach
    reach: float                # cosine distance, see the module doc
    median_distance: float      # failures' median distance to their nearest eligible row (inf: none found)
    distance_ratio: float       # median_distance over the pool rows' median spacing


def _nearest_allowed(search: SearchFn, queries: np.ndarray, allowed: np.ndarray,
                     itself: np.ndarray | None = None) -> np.ndarray:
    """Each query's distance to its nearest allowed pool row among its K nearest (inf when
    none is allowed), leaving out the query's own row ``itself``."""
    dist, ids = search(np.ascontiguousarray(queries, dtype=np.float32), K)
    ok = (ids >= 0) & allowed[np.maximum(ids, 0)]
    if itself is not None:
        ok &= ids != itself[:, None]
    return np.where(ok, dist, np.inf).min(axis=1)


def _sample(n: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, SAMPLE, replace=False)) if n > SAMPLE else np.arange(n)


def pool_coverage(regions: list[TargetRegion], search: SearchFn, vectors: VectorsFn, allowed: np.ndarray,
                  seed: int = 0) -> list[RegionCoverage]:
    """Coverage of each region (the confusions no region holds are left out) by the
    ``allowed`` rows of the pool that ``search(unit queries, k) -> (cosine distances, rows)``
    searches; ``vectors(rows)`` gives pool rows at unit length. Empty when fewer than two
    rows are allowed (no spacing to measure)."""
    eligible = np.flatnonzero(allowed)
    if len(eligible) < 2:
        return []
    rows = eligible[_sample(len(eligible), seed)]
    spacing = _nearest_allowed(search, vectors(rows), allowed, itself=rows)
    spacing = spacing[np.isfinite(spacing)]
    if len(spacing) == 0:
        return []
    reach = float(np.quantile(spacing, REACH_QUANTILE))
    typical = max(float(np.median(spacing)), 1e-12)
    out = []
    for region in regions:
        if region.confusion is not None or len(region.failure_embeddings) == 0:
            continue
        failures = region.failure_embeddings[_sample(len(region.failure_embeddings), seed + 1)]
        nearest = _nearest_allowed(search, normalise(failures), allowed)
        median = float(np.median(nearest))
        out.append(RegionCoverage(region_id=int(region.region_id), failures=len(failures),
                                  covered=float(np.mean(nearest <= reach)), reach=reach,
                                  median_distance=median, distance_ratio=median / typical))
    return out
