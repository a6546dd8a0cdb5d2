"""Rows whose given label disagrees with their neighbourhood, grouped by the (given, neighbours') class pair.

A class-pair confusion ("3s that look like 8s") and a mislabelled batch look
the same from the embedding: rows labelled a that sit among rows labelled b.
Density clustering misses them once class directions are projected out, and
they are invisible to metadata when nothing records their cause. Grouping the
rows by (a, b) turns each such pair into a candidate region.

Membership depends on the rows' embeddings and given labels only, never on
the model's outcome, so a region built this way is tested on its held-out
rows like any other.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .failure_clusters import nearest


def neighbourhood_label(space: np.ndarray, labels: np.ndarray, k: int = 15, min_share: float = 0.5,
                        max_reference: int = 20000, seed: int = 0,
                        compute: Optional[Any] = None) -> np.ndarray:
    """Per row, the label held by at least ``min_share`` of its k nearest rows (itself excluded), else -1.

    Neighbours come from a random sample of at most ``max_reference`` rows, so
    the cost is one approximate kNN search of every row against that sample.
    """
    n = len(labels)
    rng = np.random.default_rng(seed)
    ref = np.arange(n) if n <= max_reference else np.sort(rng.choice(n, max_reference, replace=False))
    kk = int(min(k + 1, len(ref)))
    _, idx = nearest(space[ref], space, kk, approximate=True, compute=compute)
    rows = ref[idx]
    own = rows == np.arange(n)[:, None]
    lab = np.where(own, -1, labels[rows])
    num_classes = int(labels.max()) + 1
    counts = np.zeros((n, num_classes + 1))
    np.add.at(counts, (np.repeat(np.arange(n), kk), (lab + 1).ravel()), 1.0)
    counts = counts[:, 1:]
    top = counts.argmax(axis=1)
    share = counts[np.arange(n), top] / np.maximum(counts.sum(axis=1), 1.0)
    return np.where(share >= min_share, top, -1).astype(np.int64)


def disagreement_pairs(labels: np.ndarray, said: np.ndarray, counted: np.ndarray,
                       min_count: int) -> list[tuple[int, int, np.ndarray]]:
    """(given, neighbours') class pairs holding at least ``min_count`` counted rows, largest first.

    ``said`` is :func:`neighbourhood_label`; ``counted`` marks the rows whose
    number decides (the clustered failures), so the choice of pairs does not
    look at any held-out row's outcome. Each pair comes with its row mask.
    """
    off = (said >= 0) & (said != labels)
    pairs = {}
    for a, b in set(zip(labels[off & counted].tolist(), said[off & counted].tolist())):
        rows = off & (labels == a) & (said == b)
        hits = int((rows & counted).sum())
        if hits >= min_count:
            pairs[(a, b)] = (hits, rows)
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [(a, b, rows) for (a, b), (_, rows) in ranked]
