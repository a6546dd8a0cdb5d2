"""Failure regions in embedding space: cluster the failures, then give every sample a region.

``FailureClusterer(...).fit(embeddings, failed, classes)`` returns ``FailureClusters``.

Why not plain HDBSCAN on the embeddings: failures that share a cause (a camera,
a lighting condition) are spread over every class, and class identity dominates
embedding distances, so density clustering finds per-class fragments or one
blob. Two steps fix that: project out the directions that separate the given
classes (what the model already uses), then embed the failures' kNN graph
spectrally, which turns locally-consistent groups into compact blobs that
HDBSCAN separates.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import hdbscan
import numpy as np
from sklearn.manifold import SpectralEmbedding


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
    params: dict
    # float32 rows x dims: PCA of the normalised embeddings with class directions
    # kept, where neighbourhoods (assignment, label agreement, medoids) are taken.
    local: np.ndarray | None = None


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
    """Clusters failures with HDBSCAN after class-direction removal, PCA and a spectral kNN embedding.

    ``min_cluster_size`` / ``min_samples`` count failures among those clustered
    (at most ``max_cluster_points``, a random sample beyond that). None
    parameters are scaled to the data size at fit time; the values used are in
    ``params_``.
    """

    def __init__(self, min_cluster_size: int | None = None, min_samples: int | None = None,
                 reduce_to: int | None = None, graph_neighbours: int = 30, embed_dims: int = 4,
                 remove_class_directions: bool = True, max_cluster_points: int = 10000,
                 assign_neighbours: int = 15, assign_share: float = 0.35,
                 max_reference_points: int = 30000, local_dims: int | None = None, seed: int = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.reduce_to = reduce_to
        self.graph_neighbours = graph_neighbours
        self.embed_dims = embed_dims
        self.remove_class_directions = remove_class_directions
        self.max_cluster_points = max_cluster_points
        self.assign_neighbours = assign_neighbours
        self.assign_share = assign_share
        self.max_reference_points = max_reference_points
        self.local_dims = local_dims
        self.seed = seed

    def _scaled_params(self, n_fit: int, dim: int) -> dict:
        # ~5% of the clustered failures: big enough to be a cause worth acting on,
        # small enough that four or five causes each get their own region.
        mcs = self.min_cluster_size or max(10, int(round(0.05 * n_fit)))
        ms = self.min_samples or max(5, mcs // 4)
        reduce_to = self.reduce_to or min(dim, 16)
        return {"min_cluster_size": int(mcs), "min_samples": int(ms), "reduce_to": int(reduce_to)}

    def fit(self, embeddings: np.ndarray, failed: np.ndarray,
            classes: np.ndarray | None = None) -> FailureClusters:
        """Cluster the failed rows and assign every row to its nearest region.

        ``classes`` (the given labels) lets the clusterer ignore what separates
        classes; without it failures group by appearance alone.
        """
        x = l2_normalise(embeddings)
        failed = np.asarray(failed, dtype=bool)
        if x.ndim != 2 or len(x) != len(failed):
            raise ValueError(f"embeddings has {len(x)} rows but failed has {len(failed)}")
        if classes is not None and len(classes) != len(x):
            raise ValueError(f"classes has {len(classes)} rows but embeddings has {len(x)}")
        n, dim = x.shape
        rng = np.random.default_rng(self.seed)
        fail_rows = np.flatnonzero(failed)
        # HDBSCAN and the spectral step grow faster than linearly; cluster a sample,
        # every other row joins by nearest neighbour.
        fitted = fail_rows
        if len(fail_rows) > self.max_cluster_points:
            fitted = np.sort(rng.choice(fail_rows, self.max_cluster_points, replace=False))
        params = self._scaled_params(len(fitted), dim)
        self.params_ = params
        reduced = self._reduce(x, classes, params["reduce_to"])
        cluster_of_failure = np.full(len(fail_rows), -1, dtype=np.int64)
        region_of_sample = np.full(n, -1, dtype=np.int64)
        local = self._local_space(x, self.local_dims or params["reduce_to"] * 2)
        empty = FailureClusters(region_of_sample, cluster_of_failure, 0, reduced, params, local)
        if len(fitted) < max(2 * params["min_cluster_size"], self.embed_dims + 2, 3):
            self.result_ = empty
            return empty

        labels = self._cluster(reduced[fitted], params)
        num_regions = int(labels.max()) + 1
        if num_regions == 0:
            self.result_ = empty
            return empty
        # Failures HDBSCAN left as noise (or did not see) take their failure
        # neighbours' majority region, so noise does not swallow most failures.
        # Neighbourhoods for assignment are taken with class directions kept:
        # locally, class identity is part of what makes two rows alike.
        clustered = fitted[labels >= 0]
        cluster_of_failure = self._vote(local[clustered], labels[labels >= 0], local[fail_rows],
                                        np.ones(len(clustered)), num_regions, exclude_self=clustered,
                                        query_rows=fail_rows)
        region_of_sample = self._assign_rows(local, failed, fail_rows, cluster_of_failure,
                                             num_regions, rng)
        self.result_ = FailureClusters(region_of_sample, cluster_of_failure, num_regions,
                                       reduced, params, local)
        return self.result_

    def _assign_rows(self, local, failed, fail_rows, cluster_of_failure, num_regions, rng):
        """Region of every row, failed or not, by one rule so error rates stay unbiased.

        A row joins region r when r's failures hold at least ``assign_share`` of
        its nearest rows, correct rows included (subsampled and weighted back up
        beyond ``max_reference_points``): rows where the model mostly succeeds
        stay outside every region.
        """
        ok_rows = np.flatnonzero(~failed)
        room = max(self.max_reference_points - len(fail_rows), 1000)
        sampled_ok = ok_rows if len(ok_rows) <= room else rng.choice(ok_rows, room, replace=False)
        ref_rows = np.concatenate([fail_rows, sampled_ok])
        ref_labels = np.concatenate([cluster_of_failure, np.full(len(sampled_ok), -1)])
        weights = np.concatenate([np.ones(len(fail_rows)),
                                  np.full(len(sampled_ok), len(ok_rows) / max(len(sampled_ok), 1))])
        return self._vote(local[ref_rows], ref_labels, local, weights, num_regions,
                          exclude_self=ref_rows, query_rows=np.arange(len(local)),
                          share=self.assign_share)

    def _vote(self, ref_points, ref_labels, queries, weights, num_regions, exclude_self, query_rows,
              share: float = 0.5):
        """Label of each query: the region holding a weighted majority of its neighbours, else -1."""
        k = int(min(self.assign_neighbours + 1, len(ref_points)))
        _, idx = nearest(ref_points, queries, k)
        # A query that is itself a reference point does not vote for itself.
        own = exclude_self[idx] == query_rows[:, None]
        w = np.where(own, 0.0, weights[idx])
        lab = ref_labels[idx]
        totals = w.sum(axis=1)
        votes = np.zeros((len(queries), num_regions + 1))
        np.add.at(votes, (np.repeat(np.arange(len(queries)), k), (lab + 1).ravel()), w.ravel())
        best = votes[:, 1:].argmax(axis=1)
        best_share = votes[np.arange(len(queries)), best + 1] / np.maximum(totals, 1e-12)
        return np.where(best_share >= share, best, -1).astype(np.int64)

    def _cluster(self, points: np.ndarray, params: dict) -> np.ndarray:
        """HDBSCAN labels of the points, after a spectral embedding of their kNN graph."""
        k = int(min(self.graph_neighbours, len(points) - 1))
        spectral = SpectralEmbedding(n_components=self.embed_dims, affinity="nearest_neighbors",
                                     n_neighbors=k, random_state=self.seed)
        embedded = spectral.fit_transform(points.astype(np.float64))
        clusterer = hdbscan.HDBSCAN(min_cluster_size=params["min_cluster_size"],
                                    min_samples=params["min_samples"])
        return clusterer.fit_predict(embedded).astype(np.int64)

    @staticmethod
    def _local_space(x: np.ndarray, dims: int) -> np.ndarray:
        centred = x - x.mean(axis=0)
        if dims >= x.shape[1]:
            return np.ascontiguousarray(centred)
        cov = centred.T.astype(np.float64) @ centred / max(len(x) - 1, 1)
        _, vectors = np.linalg.eigh(cov)
        return np.ascontiguousarray(centred @ vectors[:, ::-1][:, :dims].astype(np.float32))

    def _reduce(self, x: np.ndarray, classes: np.ndarray | None, reduce_to: int) -> np.ndarray:
        """Centred rows, minus class-mean directions, projected on the top principal axes."""
        centred = (x - x.mean(axis=0)).astype(np.float32)
        self.class_basis_ = None
        if self.remove_class_directions and classes is not None:
            values = np.unique(classes)
            # Only worth it when classes span a small part of the space; with many
            # classes the class directions are most of the signal.
            if 1 < len(values) <= x.shape[1] // 2:
                means = np.stack([centred[classes == c].mean(axis=0) for c in values])
                basis, _ = np.linalg.qr(means.T.astype(np.float64))
                self.class_basis_ = basis.astype(np.float32)
                centred = centred - (centred @ self.class_basis_) @ self.class_basis_.T
        if reduce_to >= x.shape[1]:
            self.components_ = None
            return np.ascontiguousarray(centred)
        cov = centred.T.astype(np.float64) @ centred / max(len(x) - 1, 1)
        _, vectors = np.linalg.eigh(cov)
        self.components_ = vectors[:, ::-1][:, :reduce_to].astype(np.float32)
        return np.ascontiguousarray(centred @ self.components_)
