"""A 2-D map of a test set's embeddings for people to look at.

``EmbeddingMapper(max_points=3000).fit(embeddings, region_of_sample)`` projects
the L2-normalised embeddings onto their first two principal components and
keeps a bounded sample of points. Cosine geometry (the normalisation) is what
the failure clustering and the pool search use, so the map shows the same
neighbourhoods they see.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

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

    def fit(self, embeddings: np.ndarray, region_of_sample: np.ndarray | None = None) -> EmbeddingMap:
        """Returns (and stores in ``map_``) the sampled 2-D points."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
        n = len(x)
        regions = (np.full(n, -1, dtype=np.int64) if region_of_sample is None
                   else np.asarray(region_of_sample, dtype=np.int64))
        if len(regions) != n:
            raise ValueError(f"region_of_sample has {len(regions)} values but embeddings has {n} rows")
        rng = np.random.default_rng(self.seed)
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
