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
from typing import Any, Optional

import faiss
import hdbscan
import numpy as np

from .parallel import row_chunks
from .results import ProgressFn, no_progress
from .spectral import eigenmap


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
    # bool per row: rows whose region does not depend on their own outcome (every
    # correct row and the failures held out of clustering); a region's error rate
    # over these rows is an unbiased test of it (see FailureClusterer).
    held_out: np.ndarray | None = None


def l2_normalise(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


# Rows per kNN search task: big enough that a task's overhead is small, small enough
# that 10^6-row assignments spread over a cluster's cores.
SEARCH_CHUNK_ROWS = 50_000


def nearest(index_points: np.ndarray, queries: np.ndarray, k: int,
            approximate: bool = False, compute: Optional[Any] = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (L2 distances, indices) via faiss.

    ``approximate`` uses an inverted-file index once there are enough points:
    a vote over 15 neighbours does not need the exact 15. With ``compute``
    (:mod:`.parallel`) the index is built once and the queries are searched in
    chunks of ``SEARCH_CHUNK_ROWS`` as tasks, here or on a cluster; the chunks
    do not depend on where they run, so neither does the answer.
    """
    points = np.ascontiguousarray(index_points, dtype=np.float32)
    dim = points.shape[1]
    if approximate and len(points) >= 5000:
        lists = int(np.sqrt(len(points)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
        index.cp.seed = 0
        index.train(points)
        index.nprobe = 8
    else:
        index = faiss.IndexFlatL2(dim)
    index.add(points)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if compute is None:
        dist, idx = index.search(queries, k)
    else:
        chunks = [queries[a:b] for a, b in row_chunks(len(queries), -(-len(queries) // SEARCH_CHUNK_ROWS))]
        answers = compute.map_chunks(search_serialized, (faiss.serialize_index(index), k), chunks)
        dist, idx = np.vstack([a[0] for a in answers]), np.vstack([a[1] for a in answers])
    return np.sqrt(np.maximum(dist, 0.0)), idx


def search_serialized(shared: tuple[np.ndarray, int], queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A task of :func:`nearest`: search one chunk of queries in the serialized index."""
    blob, k = shared
    return faiss.deserialize_index(blob).search(queries, k)


# Rows per block where a step over every row would otherwise make whole-size temporaries
# (a 10^6 x 128 float32 matrix is 0.5 GB; a block of it, 32 MB).
ROW_BLOCK = 65_536
AXES_SAMPLE_ROWS = 20_000


def _row_sample(n: int, seed: int, max_rows: int) -> np.ndarray | None:
    """The rows principal_axes reads (None: all of them)."""
    return np.random.default_rng(seed).choice(n, max_rows, replace=False) if n > max_rows else None


def principal_axes(centred: np.ndarray, dims: int, seed: int = 0, max_rows: int = AXES_SAMPLE_ROWS) -> np.ndarray:
    """Top principal axes (columns) of centred rows, from a row sample: axes settle long before 100k rows."""
    pick = _row_sample(len(centred), seed, max_rows)
    rows = centred if pick is None else centred[pick]
    rows = rows.astype(np.float64)
    _, vectors = np.linalg.eigh(rows.T @ rows / max(len(rows) - 1, 1))
    return vectors[:, ::-1][:, :dims].astype(np.float32)


def spectral_embedding(points: np.ndarray, k: int, dims: int, seed: int = 0) -> np.ndarray:
    """Laplacian-eigenmap coordinates of the points' symmetric kNN graph (:func:`.spectral.eigenmap`),
    each column scaled to norm sqrt(n)."""
    n = len(points)
    _, idx = nearest(points, points, k + 1)
    vectors = eigenmap(idx, dims, v0=np.random.default_rng(seed).uniform(-1, 1, n))
    return vectors / np.linalg.norm(vectors, axis=0, keepdims=True) * np.sqrt(n)


class FailureClusterer:
    """Clusters failures with HDBSCAN after class-direction removal, PCA and a spectral kNN embedding.

    Only a random ``fit_share`` of the failures (at most ``max_cluster_points``)
    is clustered; the other failures, like every correct row, join regions by
    the vote of their neighbours among the clustered failures and correct rows.
    Why: regions formed from failures have an error rate inflated by that very
    selection (on data with no failure pattern at all a cluster of failures is
    all failures), so a region is tested on the held-out rows only, whose
    membership does not depend on their own outcome.

    ``min_cluster_size`` / ``min_samples`` count failures among those clustered.
    None parameters are scaled to the data size at fit time; the values used
    are in ``params_``.
    """

    def __init__(self, min_cluster_size: int | None = None, min_samples: int | None = None,
                 reduce_to: int | None = None, graph_neighbours: int = 30, embed_dims: int = 4,
                 remove_class_directions: bool = True, max_cluster_points: int = 10000,
                 assign_neighbours: int = 15, assign_share: float = 0.2,
                 assign_label_share: float | None = 0.4,
                 max_reference_points: int = 15000, local_dims: int | None = None,
                 fit_share: float = 0.5, assign_in: str = "reduced", axes_from: str = "failures",
                 scale_graph: bool = True, seed: int = 0, compute: Optional[Any] = None):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.reduce_to = reduce_to
        self.graph_neighbours = graph_neighbours
        self.embed_dims = embed_dims
        self.remove_class_directions = remove_class_directions
        self.max_cluster_points = max_cluster_points
        self.assign_neighbours = assign_neighbours
        self.assign_share = assign_share
        self.assign_label_share = assign_label_share
        self.max_reference_points = max_reference_points
        self.local_dims = local_dims
        self.fit_share = fit_share
        self.assign_in = assign_in
        self.axes_from = axes_from
        self.scale_graph = scale_graph
        self.seed = seed
        self.compute = compute      # where the row-level kNN search runs (core/parallel.py); None: here, unchunked

    def _scaled_params(self, n_fit: int, dim: int) -> dict:
        # ~5% of the clustered failures: big enough to be a cause worth acting on,
        # small enough that four or five causes each get their own region.
        mcs = self.min_cluster_size or max(10, int(round(0.05 * n_fit)))
        ms = self.min_samples or max(5, mcs // 4)
        reduce_to = self.reduce_to or min(dim, 32)
        return {"min_cluster_size": int(mcs), "min_samples": int(ms), "reduce_to": int(reduce_to)}

    def fit(self, embeddings: np.ndarray, failed: np.ndarray, classes: np.ndarray | None = None,
            progress: ProgressFn | None = None) -> FailureClusters:
        """Cluster the failed rows and assign every row to its nearest region.

        ``classes`` (the given labels) lets the clusterer ignore what separates
        classes; without it failures group by appearance alone.
        """
        progress = progress or no_progress
        progress(0.0, "reducing embeddings")
        x = l2_normalise(embeddings)       # our copy: _reduce centres it in place
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
        n_fit = int(min(self.max_cluster_points, np.ceil(self.fit_share * len(fail_rows))))
        fitted = np.sort(rng.choice(fail_rows, n_fit, replace=False))
        held_out = np.ones(n, dtype=bool)
        held_out[fitted] = False
        params = self._scaled_params(len(fitted), dim)
        self.params_ = params
        local = self._local_space(x, self.local_dims or params["reduce_to"] * 2)
        reduced = self._reduce(x, classes, params["reduce_to"], fitted if self.axes_from == "failures" else None)
        del x                               # centred in place by _reduce
        cluster_of_failure = np.full(len(fail_rows), -1, dtype=np.int64)
        region_of_sample = np.full(n, -1, dtype=np.int64)
        empty = FailureClusters(region_of_sample, cluster_of_failure, 0, reduced, params, local, held_out)
        if len(fitted) < max(2 * params["min_cluster_size"], self.embed_dims + 2, 3):
            self.result_ = empty
            return empty

        progress(0.2, "clustering failures")
        labels = self._cluster(reduced[fitted], params)
        num_regions = int(labels.max()) + 1
        if num_regions == 0:
            self.result_ = empty
            return empty
        # Failures HDBSCAN left as noise (or did not see) take their failure
        # neighbours' majority region, so noise does not swallow most failures.
        # Neighbourhoods for assignment are taken with class directions kept:
        # locally, class identity is part of what makes two rows alike.
        progress(0.5, "assigning failures to regions")
        vote_space = local if self.assign_in == "local" else reduced
        clustered = fitted[labels >= 0]
        cluster_of_failure = self._vote(vote_space[clustered], labels[labels >= 0], vote_space[fail_rows],
                                        np.ones(len(clustered)), num_regions, exclude_self=clustered,
                                        query_rows=fail_rows)
        progress(0.6, "assigning rows to regions")
        region_of_sample = self._assign_rows(vote_space, failed, fail_rows, fitted, cluster_of_failure,
                                             num_regions, rng)
        self.result_ = FailureClusters(region_of_sample, cluster_of_failure, num_regions,
                                       reduced, params, local, held_out)
        return self.result_

    def _assign_rows(self, local, failed, fail_rows, fitted, cluster_of_failure, num_regions, rng):
        """Region of every row, failed or not, by one rule so error rates stay unbiased.

        A row joins region r when r's failures hold at least ``assign_share`` of
        its nearest rows, correct rows included. The reference rows are the
        clustered failures and (a sample of) the correct rows, each weighted
        back up to its share of the data; held-out failures are never
        references, so a held-out row's region does not depend on its outcome.
        """
        ok_rows = np.flatnonzero(~failed)
        rate = min(1.0, self.max_reference_points / max(len(local), 1))
        ref_fit = np.sort(rng.choice(fitted, int(np.ceil(rate * len(fitted))), replace=False))
        ref_ok = np.sort(rng.choice(ok_rows, int(np.ceil(rate * len(ok_rows))), replace=False))
        ref_rows = np.concatenate([ref_fit, ref_ok])
        label_of_row = np.full(len(local), -1, dtype=np.int64)
        label_of_row[fail_rows] = cluster_of_failure
        ref_labels = np.concatenate([label_of_row[ref_fit], np.full(len(ref_ok), -1)])
        weights = np.concatenate([np.full(len(ref_fit), len(fail_rows) / max(len(ref_fit), 1)),
                                  np.full(len(ref_ok), len(ok_rows) / max(len(ref_ok), 1))])
        return self._vote(local[ref_rows], ref_labels, local, weights, num_regions,
                          exclude_self=ref_rows, query_rows=np.arange(len(local)),
                          # Twice the test set's failure rate at least: where a fifth of all
                          # rows fail, a neighbourhood failing a fifth of the time is ordinary.
                          share=max(self.assign_share, 2.0 * len(fail_rows) / max(len(local), 1)),
                          approximate=True,
                          label_share=self.assign_label_share,
                          ref_failed=np.arange(len(ref_rows)) < len(ref_fit))

    def _vote(self, ref_points, ref_labels, queries, weights, num_regions, exclude_self, query_rows,
              share: float = 0.5, approximate: bool = False, label_share: float | None = None,
              ref_failed: np.ndarray | None = None):
        """Label of each query: the region holding a weighted majority of its neighbours, else -1.

        With ``label_share``, two questions instead of one: is the neighbourhood
        failure-dense (failures of any region, or none, weigh at least ``share``)
        and does one region hold at least ``label_share`` of those failures? A
        condition the model gets wrong half the time then still keeps its rows.
        """
        k = int(min(self.assign_neighbours + 1, len(ref_points)))
        _, idx = nearest(ref_points, queries, k, approximate, compute=self.compute)
        out = np.empty(len(queries), dtype=np.int64)
        # Block by block: each row's vote is its own, and the per-neighbour temporaries
        # (weights, labels, own-row flags) of 10^6 rows would be ~1 GB at once.
        for a in range(0, len(queries), ROW_BLOCK):
            b = min(a + ROW_BLOCK, len(queries))
            out[a:b] = _vote_block(idx[a:b], ref_labels, weights, exclude_self, query_rows[a:b], num_regions,
                                   share, label_share, ref_failed)
        return out

    def _cluster(self, points: np.ndarray, params: dict) -> np.ndarray:
        """HDBSCAN labels of the points, after a spectral embedding of their kNN graph."""
        # On a few dozen points 30 neighbours join everything to everything; the graph
        # needs fewer neighbours than a cause has points.
        k = self.graph_neighbours if not self.scale_graph else min(self.graph_neighbours,
                                                                    max(8, int(np.sqrt(len(points)))))
        embedded = spectral_embedding(points, int(min(k, len(points) - 1)),
                                      self.embed_dims, self.seed)
        clusterer = hdbscan.HDBSCAN(min_cluster_size=params["min_cluster_size"],
                                    min_samples=params["min_samples"])
        return clusterer.fit_predict(embedded).astype(np.int64)

    @staticmethod
    def _local_space(x: np.ndarray, dims: int) -> np.ndarray:
        """Centred rows of ``x`` on their top ``dims`` principal axes, block by block (no centred copy of x)."""
        mean = x.mean(axis=0)
        if dims >= x.shape[1]:
            return np.ascontiguousarray(x - mean)
        pick = _row_sample(len(x), 0, AXES_SAMPLE_ROWS)
        sample = (x if pick is None else x[pick]) - mean
        axes = principal_axes(sample, dims, max_rows=len(sample))
        out = np.empty((len(x), axes.shape[1]), dtype=np.float32)
        for a in range(0, len(x), ROW_BLOCK):
            out[a:a + ROW_BLOCK] = (x[a:a + ROW_BLOCK] - mean) @ axes
        return out

    def _reduce(self, x: np.ndarray, classes: np.ndarray | None, reduce_to: int,
                axes_rows: np.ndarray | None = None) -> np.ndarray:
        """Centred rows, minus class-mean directions, projected on the top principal axes.

        With ``axes_rows`` (the clustered failures) the axes are those along which
        the failures vary: a condition holding 0.5% of the rows is a large share
        of the failures but too little of all rows' variance to reach the top axes.

        ``x`` (float32, ours) is centred in place: a 10^6-row test set then holds one
        full-size matrix here, not three.
        """
        centred = x
        centred -= x.mean(axis=0)
        self.class_basis_ = None
        if self.remove_class_directions and classes is not None:
            values = np.unique(classes)
            # Only worth it when classes span a small part of the space; with many
            # classes the class directions are most of the signal.
            if 1 < len(values) <= x.shape[1] // 2:
                means = np.stack([centred[classes == c].mean(axis=0) for c in values])
                basis, _ = np.linalg.qr(means.T.astype(np.float64))
                self.class_basis_ = basis.astype(np.float32)
                along = centred @ self.class_basis_         # rows x classes: small
                for a in range(0, len(centred), ROW_BLOCK):
                    centred[a:a + ROW_BLOCK] -= along[a:a + ROW_BLOCK] @ self.class_basis_.T
        if reduce_to >= x.shape[1]:
            self.components_ = None
            return np.ascontiguousarray(centred)
        rows = None if axes_rows is None else centred[axes_rows]
        # Fewer than 2 failures span no axes: those of all rows serve.
        basis_rows = centred if rows is None or len(rows) < 2 else rows - rows.mean(axis=0)
        self.components_ = principal_axes(basis_rows, reduce_to, self.seed)
        return np.ascontiguousarray(centred @ self.components_)


def _vote_block(idx: np.ndarray, ref_labels, weights, exclude_self, query_rows, num_regions: int, share: float,
                label_share: float | None, ref_failed: np.ndarray | None) -> np.ndarray:
    """FailureClusterer._vote for the queries whose neighbours (reference positions) are ``idx``."""
    n, k = idx.shape
    # A query that is itself a reference point does not vote for itself.
    own = exclude_self[idx] == query_rows[:, None]
    w = np.where(own, 0.0, weights[idx])
    lab = ref_labels[idx]
    totals = w.sum(axis=1)
    votes = np.zeros((n, num_regions + 1))
    np.add.at(votes, (np.repeat(np.arange(n), k), (lab + 1).ravel()), w.ravel())
    best = votes[:, 1:].argmax(axis=1)
    best_votes = votes[np.arange(n), best + 1]
    if label_share is None:
        return np.where(best_votes / np.maximum(totals, 1e-12) >= share, best, -1).astype(np.int64)
    failures = (w * ref_failed[idx]).sum(axis=1)
    dense = failures / np.maximum(totals, 1e-12) >= share
    held = best_votes / np.maximum(failures, 1e-12) >= label_share
    return np.where(dense & held & (best_votes > 0), best, -1).astype(np.int64)
