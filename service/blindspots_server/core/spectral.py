"""Laplacian eigenmaps of kNN graphs: the failure clustering's embedding and the report's map."""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.linalg import eigsh


def eigenmap(knn: np.ndarray, count: int, v0: Optional[np.ndarray] = None, dense: bool = False) -> np.ndarray:
    """Coordinates of a kNN graph's nodes on its ``count`` leading non-trivial eigenvectors.

    ``knn[i]`` lists row i's neighbours; the graph is their symmetric 0/1 adjacency,
    normalised by degree. Its eigenvectors of largest eigenvalue, first to last, each
    scaled by 1/sqrt(degree) (Laplacian-eigenmap coordinates). Lanczos from ``v0``, without
    shift-invert (sklearn's default factorises the Laplacian, minutes at 10k points), or,
    ``dense``, the exact dense solver (small graphs).

    The trivial vector (sqrt of the degrees, eigenvalue 1) carries nothing. On a graph in
    several pieces (a tight group of rows apart from the rest) eigenvalue 1 repeats and a
    solver returns any basis of its space, the trivial vector mixed into each: dropping the
    first column then drops what tells the pieces apart, on some machines and not others.
    So the trivial direction is taken out of every column, the column it leaves emptiest
    goes, and the rest are made orthonormal again in eigenvalue order (on a graph in one
    piece: the columns after the first, up to sign).
    """
    m, k = knn.shape
    rows = np.repeat(np.arange(m), k)
    graph = csr_matrix((np.ones(rows.size), (rows, knn.ravel())), shape=(m, m))
    graph = ((graph + graph.T) > 0).astype(np.float64)
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = 1.0 / np.sqrt(degree)
    normalised = graph.multiply(scale[:, None]).multiply(scale[None, :]).tocsr()
    if dense:
        vectors = np.linalg.eigh(normalised.toarray())[1][:, -(count + 1):]
    else:
        _, vectors = eigsh(normalised, k=count + 1, which="LA", v0=v0, tol=1e-6)
    vectors = vectors[:, ::-1]                      # largest eigenvalue first
    trivial = np.sqrt(degree) / np.linalg.norm(np.sqrt(degree))
    vectors = vectors - np.outer(trivial, trivial @ vectors)
    vectors = np.delete(vectors, int(np.argmin(np.linalg.norm(vectors, axis=0))), axis=1)
    return np.linalg.qr(vectors)[0] * scale[:, None]
