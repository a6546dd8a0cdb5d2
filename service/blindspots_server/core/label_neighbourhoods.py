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


def neighbourhood_label(space: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None, k: int = 15,
                        min_share: float = 0.5, max_reference: int = 20000, seed: int = 0,
                        compute: Optional[Any] = None) -> np.ndarray:
    """Per row, the label held by at least ``min_share`` of its k nearest rows (itself excluded), else -1.

    Neighbours come from a random sample of at most ``max_reference`` rows, so
    the cost is one approximate kNN search of the asked ``rows`` (default: all;
    the answer has -1 elsewhere) against that sample.
    """
    n = len(labels)
    asked = np.arange(n) if rows is None else np.flatnonzero(np.asarray(rows, dtype=bool))
    out = np.full(n, -1, dtype=np.int64)
    if len(asked) == 0 or n < 2:
        return out
    rng = np.random.default_rng(seed)
    ref = np.arange(n) if n <= max_reference else np.sort(rng.choice(n, max_reference, replace=False))
    kk = int(min(k + 1, len(ref)))
    _, idx = nearest(space[ref], space[asked], kk, approximate=True, compute=compute)
    near = ref[idx]
    lab = np.where(near == asked[:, None], -1, labels[near])
    num_classes = int(labels.max()) + 1
    counts = np.zeros((len(asked), num_classes + 1))
    np.add.at(counts, (np.repeat(np.arange(len(asked)), kk), (lab + 1).ravel()), 1.0)
    counts = counts[:, 1:]
    top = counts.argmax(axis=1)
    share = counts[np.arange(len(asked)), top] / np.maximum(counts.sum(axis=1), 1.0)
    out[asked] = np.where(share >= min_share, top, -1)
    return out


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
