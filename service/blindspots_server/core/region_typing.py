"""Is a failure region label noise (relabel it) or a data gap (collect more like it)?

The evidence is local: how confident the model is on the region's failures and
whose side their embedding-space neighbours take: the prediction's (the given
labels are likely wrong) or the given label's (the model has not learned this
part of the space).

Neighbours alone cannot tell a confidently wrong data gap from label noise: in
both the failures sit among correctly predicted rows of the predicted class. What
differs is the given labels. Wrong labels are drawn without regard to the input,
so among failures the model reads as the same class, a failure's nearest fellow
failures carry its given label no more often than chance. In a data gap the given
labels are the true ones and follow the input: nearby failures share them (a
class shifted onto another), or all carry one label (a systematic confusion).
With two classes every failure of one prediction has the same given label, so
that test says nothing. There the evidence is where the failures sit: wrong labels
fall on rows like any other of their prediction, so a failure's neighbours fail
about as often as rows of that prediction do; a data gap's failures lie together,
so its failures' neighbours fail far more often. A region the neighbour rule calls
label noise is a data gap when that lift is above FAILURE_LIFT_MAX.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .failure_clusters import nearest
from .results import RegionEvidence

DATA_GAP, LABEL_NOISE, MIXED = "data_gap", "label_noise", "mixed"
# The label test (None: off, the neighbour rule alone). A region is typed label noise only
# when, among its failures of the same prediction, a failure's nearest fellow failures carry
# its given label at most LABEL_LIFT_MAX more often than two failures drawn at random do, and
# two failures drawn at random carry the same label at most LABEL_CONCENTRATION_MAX of the
# time (random wrong labels spread over the classes; a shifted class keeps one). Chosen on
# the dev families (bench/region_typing.py, bench/al_dev_sweep.py).
LABEL_LIFT_MAX: float | None = 0.05
LABEL_CONCENTRATION_MAX: float = 0.7
# Two classes (None: off): a region is label noise only when its failures' neighbours fail at
# most FAILURE_LIFT_MAX more often than the rows of the failures' prediction do. Chosen on the
# dev half's two-class family (cancer_drift, 24 seeds; bench/region_typing.py --grid).
FAILURE_LIFT_MAX: float | None = 0.2


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
                 margin: float = 0.15, seed: int = 0, label_test: bool = True):
        self.n_neighbours = n_neighbours
        self.max_queries_per_region = max_queries_per_region
        self.noise_agreement = noise_agreement
        self.noise_confidence = noise_confidence
        self.margin = margin
        self.seed = seed
        # False for groups whose failures share one given label by construction (a confusion):
        # the label test would find their labels predictable every time.
        self.label_test = label_test

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
        num_classes = len(np.union1d(labels, predicted))
        # Two classes: whether each row is mispredicted, and how often rows of its prediction are
        # (the failure lift's inputs, once for every region).
        wrong = rate_of_prediction = None
        if num_classes < 3:
            wrong = labels != predicted
            _, inverse = np.unique(predicted, return_inverse=True)
            rate_of_prediction = (np.bincount(inverse, weights=wrong) / np.bincount(inverse))[inverse]
        for r in region_ids:
            rows = queries[r]
            d, i, ns = dist[start:start + len(rows)], idx[start:start + len(rows)], not_self[start:start + len(rows)]
            start += len(rows)
            result[r] = self._type(rows, d, i, ns, k, labels, predicted, confidence, overall_scale,
                                   reduced, num_classes, wrong, rate_of_prediction)
        self.result_ = result
        return result

    def _type(self, rows, dist, idx, not_self, k, labels, predicted, confidence, scale,
              reduced, num_classes, wrong, rate_of_prediction) -> RegionType:
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
        lift = (given_label_lift(reduced[rows], labels[rows], predicted[rows], num_classes)
                if self.label_test else None)
        systematic = noisy and lift is not None and labels_predictable(*lift) is True
        clustered = None
        if wrong is not None:
            clustered = failure_lift(rows, idx, not_self, wrong, rate_of_prediction)
            systematic = systematic or (noisy and FAILURE_LIFT_MAX is not None
                                        and clustered[0] - clustered[1] > FAILURE_LIFT_MAX)
        kind = DATA_GAP if systematic else LABEL_NOISE if noisy else (DATA_GAP if gap else MIXED)
        summary = (f"failures' neighbours share the prediction {agree_pred:.0%} vs the given label "
                   f"{agree_label:.0%}; mean confidence {conf:.2f}; "
                   f"neighbourhood {density:.2f}x the typical kNN distance")
        if lift is not None:
            summary += (f"; nearby failures of the same prediction share the given label {lift[0]:.0%} "
                        f"(two at random {lift[1]:.0%})")
        if clustered is not None:
            summary += (f"; the failures' neighbours fail {clustered[0]:.0%} of the time, rows of their "
                        f"prediction {clustered[1]:.0%}")
        if kind == LABEL_NOISE:
            summary = "likely mislabelled (relabel): " + summary
        elif kind == DATA_GAP:
            summary = "likely under-represented (collect): " + summary
        else:
            summary = "mixed evidence: " + summary
        ev = RegionEvidence(mean_failure_confidence=conf, neighbour_agreement_with_prediction=agree_pred,
                            neighbour_agreement_with_label=agree_label, relative_density=density,
                            summary=summary,
                            failure_label_agreement=lift[0] if lift is not None else float("nan"),
                            failure_label_chance=lift[1] if lift is not None else float("nan"),
                            failure_neighbour_failures=clustered[0] if clustered is not None else float("nan"),
                            prediction_failure_rate=clustered[1] if clustered is not None else float("nan"))
        return RegionType(kind, ev)


def labels_predictable(agreement: float, chance: float) -> bool | None:
    """Do a region's failures' given labels follow their inputs (the label test)? None when
    not measured (NaN) or the test is off."""
    if LABEL_LIFT_MAX is None or not (np.isfinite(agreement) and np.isfinite(chance)):
        return None
    return bool(agreement - chance > LABEL_LIFT_MAX or chance > LABEL_CONCENTRATION_MAX)


def failure_lift(rows: np.ndarray, idx: np.ndarray, not_self: np.ndarray, wrong: np.ndarray,
                 rate_of_prediction: np.ndarray) -> tuple[float, float]:
    """How often a failure's neighbours (``idx``, self masked by ``not_self``) are mispredicted
    (``wrong``), and how often rows of the failure's prediction are (``rate_of_prediction``, per
    row: the level if the failures were scattered over them as wrong labels are), each averaged
    over the failures ``rows``."""
    w = not_self.astype(np.float64)
    near = float(np.mean((wrong[idx] * w).sum(1) / np.maximum(w.sum(1), 1.0)))
    return near, float(np.mean(rate_of_prediction[rows]))


def given_label_lift(points: np.ndarray, labels: np.ndarray, predicted: np.ndarray, num_classes: int,
                     k: int = 5, min_rows: int = 10) -> tuple[float, float] | None:
    """Among failures of the same prediction: how often a failure's ``k`` nearest fellow failures
    carry its given label, and how often two distinct failures drawn at random do (the chance
    level, without bias at any size), each averaged over failures.

    None when it cannot say: two classes (one possible wrong label), or under ``min_rows``
    failures in predictions held by three or more of them.
    """
    if num_classes < 3:
        return None
    agree = chance = 0.0
    weight = 0
    for p in np.unique(predicted):
        sel = np.flatnonzero(predicted == p)
        n = len(sel)
        if n < 3:
            continue
        _, counts = np.unique(labels[sel], return_counts=True)
        kk = min(k, n - 1)
        _, idx = nearest(points[sel], points[sel], kk + 1)
        not_self = idx != np.arange(n)[:, None]
        # Each row's kk nearest others (itself dropped wherever duplicates put it).
        others = np.where(not_self.all(axis=1)[:, None], idx[:, :kk],
                          idx[np.arange(n)[:, None], np.argsort(~not_self, axis=1, kind="stable")[:, :kk]])
        agree += float(np.mean(labels[sel][others] == labels[sel][:, None])) * n
        chance += float((counts * (counts - 1)).sum() / (n * (n - 1))) * n
        weight += n
    if weight < min_rows:
        return None
    return agree / weight, chance / weight


def _kth_other(dist: np.ndarray, not_self: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th neighbour other than the row itself."""
    # When self was found it sits in column 0, so the k-th other is the last column;
    # otherwise (duplicates) the k-th other is column k-1.
    found_self = ~not_self.all(axis=1)
    return np.where(found_self, dist[:, k], dist[:, k - 1])
