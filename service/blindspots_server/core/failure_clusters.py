"""Failure regions in embedding space: cluster the failures, then give every sample a region.

``FailureClusterer(...).fit(embeddings, failed)`` returns ``FailureClusters``.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import hdbscan
import numpy as np


@dataclass
class FailureClusters:
    """Where failures concentrate.

    ``region_of_sample`` covers every row (failed or not) so each region has an
    error rate over all its samples; -1 means the row is near no region.
    """

    region_of_sample: np.ndarray       # int64 per row
    cluster_of_failure: np.ndarray     # int64 per failed row (row order), HDBSCAN label, -1 noise
    num_regions: int
    reduced: np.ndarray                # float32 rows x reduce_to: the space clustering ran in
    reach: np.ndarray                  # per region: max distance from a clustered failure to join it
    params: dict


def l2_normalise(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def nearest(index_points: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (squared-free L2 distances, indices) via faiss."""
    index = faiss.IndexFlatL2(index_points.shape[1])
    index.add(np.ascontiguousarray(index_points, dtype=np.float32))
    dist, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return np.sqrt(np.maximum(dist, 0.0)), idx


class FailureClusterer:
    """Clusters failures with HDBSCAN in a reduced, normalised embedding space.

    None parameters are scaled to the data size at fit time; the values used
    are in ``params_``.
    """

    def __init__(self, min_cluster_size: int | None = None, min_samples: int | None = None,
                 reduce_to: int | None = None, max_cluster_points: int = 20000,
                 reach_quantile: float = 0.95, seed: int = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.reduce_to = reduce_to
        self.max_cluster_points = max_cluster_points
        self.reach_quantile = reach_quantile
        self.seed = seed

    def _scaled_params(self, n: int, n_failed: int, dim: int) -> dict:
        mcs = self.min_cluster_size or max(10, int(round(0.005 * n)))
        ms = self.min_samples or max(5, min(mcs, 10))
        reduce_to = self.reduce_to or min(dim, 16)
        return {"min_cluster_size": int(mcs), "min_samples": int(ms), "reduce_to": int(reduce_to)}

    def fit(self, embeddings: np.ndarray, failed: np.ndarray) -> FailureClusters:
        """Cluster the failed rows and assign every row to its nearest region."""
        x = l2_normalise(embeddings)
        failed = np.asarray(failed, dtype=bool)
        if x.ndim != 2 or len(x) != len(failed):
            raise ValueError(f"embeddings has {len(x)} rows but failed has {len(failed)}")
        n, dim = x.shape
        params = self._scaled_params(n, int(failed.sum()), dim)
        self.params_ = params
        reduced = self._reduce(x, failed, params["reduce_to"])
        fail_rows = np.flatnonzero(failed)
        cluster_of_failure = np.full(len(fail_rows), -1, dtype=np.int64)
        region_of_sample = np.full(n, -1, dtype=np.int64)
        if len(fail_rows) < max(params["min_cluster_size"], 2):
            self.result_ = FailureClusters(region_of_sample, cluster_of_failure, 0, reduced,
                                           np.zeros(0), params)
            return self.result_

        # HDBSCAN's cost grows faster than linearly; cluster a sample, extend by nearest neighbour.
        rng = np.random.default_rng(self.seed)
        fitted = fail_rows
        if len(fail_rows) > self.max_cluster_points:
            fitted = np.sort(rng.choice(fail_rows, self.max_cluster_points, replace=False))
        clusterer = hdbscan.HDBSCAN(min_cluster_size=params["min_cluster_size"],
                                    min_samples=params["min_samples"])
        labels = clusterer.fit_predict(reduced[fitted].astype(np.float64)).astype(np.int64)
        num_regions = int(labels.max()) + 1
        if num_regions == 0:
            self.result_ = FailureClusters(region_of_sample, cluster_of_failure, 0, reduced,
                                           np.zeros(0), params)
            return self.result_

        members = fitted[labels >= 0]
        member_region = labels[labels >= 0]
        reach = self._reach(reduced[members], member_region, num_regions, params["min_samples"])
        dist, idx = nearest(reduced[members], reduced, 1)
        region = member_region[idx[:, 0]]
        close = dist[:, 0] <= reach[region]
        region_of_sample[close] = region[close]
        cluster_of_failure[np.isin(fail_rows, fitted)] = labels
        self.result_ = FailureClusters(region_of_sample, cluster_of_failure, num_regions,
                                       reduced, reach, params)
        return self.result_

    def _reduce(self, x: np.ndarray, failed: np.ndarray, reduce_to: int) -> np.ndarray:
        if reduce_to >= x.shape[1]:
            return x
        centred = x - x.mean(axis=0)
        cov = centred.T.astype(np.float64) @ centred / max(len(x) - 1, 1)
        _, vectors = np.linalg.eigh(cov)
        self.components_ = vectors[:, ::-1][:, :reduce_to].astype(np.float32)
        return np.ascontiguousarray(centred @ self.components_)

    def _reach(self, points: np.ndarray, region: np.ndarray, num_regions: int, k: int) -> np.ndarray:
        """Per region, how far from its failures a row may lie and still belong to it.

        A high quantile of the members' core distances (k-th neighbour among
        failures of the same region): the region's own density sets its border.
        """
        reach = np.zeros(num_regions)
        for r in range(num_regions):
            pts = points[region == r]
            kk = min(k + 1, len(pts))
            dist, _ = nearest(pts, pts, kk)
            reach[r] = np.quantile(dist[:, -1], self.reach_quantile)
        return reach
