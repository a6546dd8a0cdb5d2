"""Is a failure region label noise (relabel it) or a data gap (collect more like it)?

The evidence is local: how confident the model is on the region's failures and
whose side their embedding-space neighbours take: the prediction's (the given
labels are likely wrong) or the given label's (the model has not learned this
part of the space).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .failure_clusters import nearest
from .results import RegionEvidence

DATA_GAP, LABEL_NOISE, MIXED = "data_gap", "label_noise", "mixed"


@dataclass
class RegionType:
    kind: str
    evidence: RegionEvidence


class RegionTyper:
    """Types each region from kNN label agreement, confidence and local density.

    A region is label noise when its failures' neighbours agree with the model
    much more than with the given labels and the model is confident; a data
    gap when neighbours back the given labels; mixed in between.
    """

    def __init__(self, n_neighbours: int = 10, max_queries_per_region: int = 500,
                 noise_agreement: float = 0.4, noise_confidence: float = 0.6,
                 margin: float = 0.15, seed: int = 0):
        self.n_neighbours = n_neighbours
        self.max_queries_per_region = max_queries_per_region
        self.noise_agreement = noise_agreement
        self.noise_confidence = noise_confidence
        self.margin = margin
        self.seed = seed

    def fit(self, reduced: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
            confidence: np.ndarray, failed: np.ndarray, region_of_sample: np.ndarray,
            region_ids: list[int]) -> dict[int, RegionType]:
        """Evidence and kind per region id, keyed by region id."""
        rng = np.random.default_rng(self.seed)
        n = len(reduced)
        k = min(self.n_neighbours, n - 1)
        queries: dict[int, np.ndarray] = {}
        for r in region_ids:
            rows = np.flatnonzero((region_of_sample == r) & failed)
            if len(rows) > self.max_queries_per_region:
                rows = rng.choice(rows, self.max_queries_per_region, replace=False)
            queries[r] = rows
        # One kNN search over all queries, plus a random sample for the overall density scale.
        background = rng.choice(n, min(n, 2000), replace=False)
        all_rows = np.concatenate([background, *queries.values()]) if queries else background
        if k < 1:
            self.result_ = {}
            return self.result_
        dist, idx = nearest(reduced, reduced[all_rows], k + 1, approximate=True)
        # Drop each query itself (its nearest neighbour at distance 0, ties aside).
        not_self = idx != all_rows[:, None]
        overall_scale = float(np.median(_kth_other(dist, not_self, k)[: len(background)])) or 1e-12
        result: dict[int, RegionType] = {}
        start = len(background)
        for r in region_ids:
            rows = queries[r]
            d, i, ns = dist[start:start + len(rows)], idx[start:start + len(rows)], not_self[start:start + len(rows)]
            start += len(rows)
            result[r] = self._type(rows, d, i, ns, k, labels, predicted, confidence, overall_scale)
        self.result_ = result
        return result

    def _type(self, rows, dist, idx, not_self, k, labels, predicted, confidence, scale) -> RegionType:
        if len(rows) == 0:
            ev = RegionEvidence(float("nan"), float("nan"), float("nan"), float("nan"), "no failures")
            return RegionType(DATA_GAP, ev)
        nb_labels = labels[idx]
        weights = not_self.astype(np.float64)
        denom = np.maximum(weights.sum(axis=1), 1.0)
        agree_pred = float(np.mean(((nb_labels == predicted[rows, None]) * weights).sum(1) / denom))
        agree_label = float(np.mean(((nb_labels == labels[rows, None]) * weights).sum(1) / denom))
        conf = float(np.mean(confidence[rows]))
        density = float(np.median(_kth_other(dist, not_self, k)) / scale)
        noisy = (agree_pred >= self.noise_agreement and agree_pred >= agree_label + self.margin
                 and conf >= self.noise_confidence)
        gap = agree_label >= agree_pred or conf < self.noise_confidence
        kind = LABEL_NOISE if noisy else (DATA_GAP if gap else MIXED)
        summary = (f"failures' neighbours share the prediction {agree_pred:.0%} vs the given label "
                   f"{agree_label:.0%}; mean confidence {conf:.2f}; "
                   f"neighbourhood {density:.2f}x the typical kNN distance")
        if kind == LABEL_NOISE:
            summary = "likely mislabelled (relabel): " + summary
        elif kind == DATA_GAP:
            summary = "likely under-represented (collect): " + summary
        else:
            summary = "mixed evidence: " + summary
        ev = RegionEvidence(mean_failure_confidence=conf, neighbour_agreement_with_prediction=agree_pred,
                            neighbour_agreement_with_label=agree_label, relative_density=density,
                            summary=summary)
        return RegionType(kind, ev)


def _kth_other(dist: np.ndarray, not_self: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th neighbour other than the row itself."""
    # When self was found it sits in column 0, so the k-th other is the last column;
    # otherwise (duplicates) the k-th other is column k-1.
    found_self = ~not_self.all(axis=1)
    return np.where(found_self, dist[:, k], dist[:, k - 1])
