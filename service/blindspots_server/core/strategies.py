"""Baseline selection strategies: random, entropy, margin, k-center coreset.

Each takes the pool as arrays plus a bool mask of the rows it may pick and
returns candidates in rank order. The targeted strategy lives in targeted.py.
"""
from __future__ import annotations

import numpy as np

from .results import ProgressFn, SuggestionCandidate

# The k-center greedy costs O(budget x rows x dim); above this many allowed rows
# it runs on a seeded random subset (a coreset of a large random sample covers
# the pool almost as well, and keeps a 1M-row pool answerable in seconds).
KCENTER_MAX_ROWS = 200_000


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row's predicted class distribution."""
    p = np.clip(probabilities.astype(np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy divided by log(classes): uncertainty in [0, 1]."""
    c = probabilities.shape[1]
    return entropy(probabilities) / np.log(c) if c > 1 else np.zeros(len(probabilities))


def top2(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest class probability per row."""
    if probabilities.shape[1] < 2:
        return probabilities[:, 0], np.zeros(len(probabilities))
    part = np.partition(probabilities, -2, axis=1)
    return part[:, -1], part[:, -2]


def _top(scores: np.ndarray, allowed: np.ndarray, budget: int) -> np.ndarray:
    """Allowed rows with the highest scores, best first; ties broken by row order."""
    rows = np.flatnonzero(allowed)
    order = np.lexsort((rows, -scores[rows]))
    return rows[order[:budget]]


def select_random(allowed: np.ndarray, budget: int, seed: int) -> list[SuggestionCandidate]:
    """Uniform random sample of allowed rows (a seeded permutation)."""
    rows = np.flatnonzero(allowed)
    picks = np.random.default_rng(seed).permutation(rows)[:budget]
    n = max(len(picks), 1)
    return [SuggestionCandidate(pool_index=int(r), score=float(1.0 - i / n), region_id=-1,
                                reason="random sample (baseline)")
            for i, r in enumerate(picks)]


def select_entropy(probabilities: np.ndarray, allowed: np.ndarray,
                   budget: int) -> list[SuggestionCandidate]:
    """Rows whose predicted class distribution has the highest entropy."""
    h = entropy(probabilities)
    hmax = np.log(probabilities.shape[1])
    return [SuggestionCandidate(pool_index=int(r), score=float(h[r]), region_id=-1,
                                reason=f"model uncertain: prediction entropy {h[r]:.2f} "
                                       f"of max {hmax:.2f}")
            for r in _top(h, allowed, budget)]


def select_margin(probabilities: np.ndarray, allowed: np.ndarray,
                  budget: int) -> list[SuggestionCandidate]:
    """Rows with the smallest gap between the two most likely classes."""
    first, second = top2(probabilities)
    score = 1.0 - (first - second)
    return [SuggestionCandidate(pool_index=int(r), score=float(score[r]), region_id=-1,
                                reason=f"small margin {first[r] - second[r]:.2f} between the "
                                       f"top two classes ({first[r]:.2f} vs {second[r]:.2f})")
            for r in _top(score, allowed, budget)]


def select_kcenter(embeddings: np.ndarray, labeled: np.ndarray | None, allowed: np.ndarray,
                   budget: int, seed: int, progress: ProgressFn) -> list[SuggestionCandidate]:
    """Greedy k-center coreset: repeatedly the row farthest from labeled + picked rows.

    ``embeddings`` and ``labeled`` are L2-normalised; distance is cosine distance.
    """
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(allowed)
    if len(rows) > KCENTER_MAX_ROWS:
        rows = np.sort(rng.choice(rows, KCENTER_MAX_ROWS, replace=False))
    x = embeddings[rows]
    if labeled is not None and len(labeled):
        import faiss

        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(labeled)
        sims, _ = flat.search(x, 1)
        mind = 1.0 - sims[:, 0].astype(np.float64)
        first = None
    else:
        mind = np.full(len(rows), np.inf)
        first = int(rng.integers(len(rows))) if len(rows) else None
    picks: list[int] = []
    dists: list[float] = []
    step = max(1, budget // 20)
    for i in range(min(budget, len(rows))):
        j = first if (i == 0 and first is not None) else int(np.argmax(mind))
        picks.append(j)
        dists.append(float(mind[j]))
        mind = np.minimum(mind, 1.0 - x @ x[j])
        mind[j] = -np.inf
        if i % step == 0:
            progress(i / budget, "k-center greedy selection")
    out = []
    for j, d in zip(picks, dists):
        reason = ("first center (nothing labeled yet)" if not np.isfinite(d) else
                  f"far from labeled data: distance {d:.2f} to the nearest labeled "
                  f"or already picked sample")
        score = d if np.isfinite(d) else 2.0
        out.append(SuggestionCandidate(pool_index=int(rows[j]), score=float(score), region_id=-1,
                                       reason=reason, distance=float(d) if np.isfinite(d) else np.nan))
    return out
