"""A 2-D map of a test set's embeddings for people to look at.

``EmbeddingMapper(max_points=3000).fit(embeddings, region_of_sample)`` keeps a
bounded sample of points and places them either by given coordinates (the
diagnosis's ``ClusteringSpaceLayout``) or by PCA of the L2-normalised embeddings.

Why not PCA alone: failure regions are found after the class directions are
projected out and in a kNN-graph embedding of what remains; the two largest
principal axes of the raw embeddings are mostly class identity, so regions'
outlines there cover each other (about 60% of the area covered by any outline
is covered by two or more on the dev scenarios). ``ClusteringSpaceLayout`` lays
out the clustering's own space (``FailureClusters.reduced``) the way the
clustering reads it, as a 2-D spectral embedding of its kNN graph, and regions
separate (0-4% on the same scenarios).
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from sklearn.decomposition import PCA

from .spectral import eigenmap

# PCA is fitted on at most this many rows: two axes are stable long before that.
MAX_FIT_ROWS = 20000
# Each region keeps at least this many of its points in the sample, so that a
# small region still shows up on a map of a large test set.
MIN_POINTS_PER_REGION = 30


@dataclass
class EmbeddingMap:
    """The sampled points: ``indices`` into the input rows, ``coordinates`` n x 2."""

    indices: np.ndarray            # int64, sorted
    coordinates: np.ndarray        # float32 n x 2
    explained_variance: float      # share of the total variance the two axes keep


class EmbeddingMapper:
    """Projects embeddings to 2-D and samples points to draw."""

    def __init__(self, max_points: int = 3000, seed: int = 0):
        if max_points < 1:
            raise ValueError(f"max_points must be positive, got {max_points}")
        self.max_points = max_points
        self.seed = seed

    def fit(self, embeddings: np.ndarray, region_of_sample: np.ndarray | None = None,
            layout: np.ndarray | None = None) -> EmbeddingMap:
        """Returns (and stores in ``map_``) the sampled 2-D points; ``layout`` (n x 2,
        e.g. from :class:`ClusteringSpaceLayout`) places them instead of PCA."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
        n = len(x)
        regions = (np.full(n, -1, dtype=np.int64) if region_of_sample is None
                   else np.asarray(region_of_sample, dtype=np.int64))
        if len(regions) != n:
            raise ValueError(f"region_of_sample has {len(regions)} values but embeddings has {n} rows")
        rng = np.random.default_rng(self.seed)
        if layout is not None:
            layout = np.asarray(layout, dtype=np.float32)
            if layout.shape != (n, 2):
                raise ValueError(f"layout must be {n} x 2, got shape {layout.shape}")
            indices = self._sample(regions, rng)
            self.map_ = EmbeddingMap(indices, layout[indices], 0.0)
            return self.map_
        x = _normalised(x)
        fit_rows = x if n <= MAX_FIT_ROWS else x[rng.choice(n, MAX_FIT_ROWS, replace=False)]
        indices = self._sample(regions, rng)
        if x.shape[1] < 2 or len(fit_rows) < 2:
            coords = np.zeros((len(indices), 2), dtype=np.float32)
            self.map_ = EmbeddingMap(indices, coords, 0.0)
            return self.map_
        pca = PCA(n_components=2, svd_solver="randomized" if x.shape[1] > 500 else "full",
                  random_state=self.seed).fit(fit_rows)
        coords = pca.transform(x[indices]).astype(np.float32)
        self.map_ = EmbeddingMap(indices, coords, float(pca.explained_variance_ratio_.sum()))
        return self.map_

    def _sample(self, regions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(regions)
        if n <= self.max_points:
            return np.arange(n, dtype=np.int64)
        chosen = np.zeros(n, dtype=bool)
        chosen[rng.choice(n, self.max_points, replace=False)] = True
        for r in np.unique(regions[regions >= 0]):
            members = np.flatnonzero(regions == r)
            want = min(len(members), MIN_POINTS_PER_REGION)
            missing = want - int(chosen[members].sum())
            if missing > 0:
                chosen[rng.choice(members[~chosen[members]], missing, replace=False)] = True
        return np.flatnonzero(chosen).astype(np.int64)


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class ClusteringSpaceLayout:
    """2-D coordinates for every row: a spectral layout of the kNN graph of the space
    the failure clustering ran in.

    The graph is built on a seeded sample of at most ``max_fit_rows`` rows (the
    eigen-solve grows faster than linearly); every row, sampled or not, is then
    placed at the mean position of its ``place_neighbours`` nearest sampled rows
    (at most a tenth of them, so a run of a few rows keeps its shape), so all rows
    follow one rule and the cost stays linear in n. Deterministic for a given
    input and seed.
    """

    def __init__(self, max_fit_rows: int = 5000, neighbours: int = 15, place_neighbours: int = 10, seed: int = 0):
        self.max_fit_rows = max_fit_rows
        self.neighbours = neighbours
        self.place_neighbours = place_neighbours
        self.seed = seed

    def fit(self, space: np.ndarray) -> np.ndarray:
        """Returns (and stores in ``coordinates_``) float32 n x 2 coordinates."""
        x = np.ascontiguousarray(space, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"space must be a non-empty 2-D array, got shape {x.shape}")
        n = len(x)
        rng = np.random.default_rng(self.seed)
        fit_rows = np.arange(n) if n <= self.max_fit_rows else np.sort(rng.choice(n, self.max_fit_rows, replace=False))
        k = int(min(self.neighbours, len(fit_rows) - 1))
        if k < 2 or x.shape[1] < 2:
            self.coordinates_ = np.zeros((n, 2), dtype=np.float32)
            return self.coordinates_
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x[fit_rows])
        _, idx = index.search(x[fit_rows], k + 1)
        fitted = _spectral_2d(idx, rng)
        # At most a tenth of the sampled rows: a run of a few rows is not averaged into one point.
        _, near = index.search(x, int(min(self.place_neighbours, max(1, len(fit_rows) // 10))))
        self.coordinates_ = fitted[near].mean(axis=1).astype(np.float32)
        return self.coordinates_


# Below this many sampled rows the eigenvectors come from the dense solver.
DENSE_MAX_ROWS = 200


def _spectral_2d(knn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The two leading non-trivial eigenvectors of the symmetric kNN graph's normalised
    adjacency (Laplacian eigenmap, :func:`.spectral.eigenmap`), scaled to unit variance."""
    m = len(knn)
    # The dense solver is exact and repeatable; Lanczos also needs more rows than the 3 vectors asked.
    dense = m <= DENSE_MAX_ROWS
    vectors = eigenmap(knn, 2, v0=None if dense else rng.uniform(-1, 1, m), dense=dense)
    vectors -= vectors.mean(axis=0)
    # Each eigenvector's sign is arbitrary: fix it so the layout does not flip between runs.
    vectors *= np.sign(vectors[np.abs(vectors).argmax(axis=0), [0, 1]])
    return vectors / np.maximum(vectors.std(axis=0), 1e-12)
