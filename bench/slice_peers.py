"""The methods bench/slice_discovery.py compares, each returning ``Found`` (region row masks).

- ``ours``: blindspots' ``Diagnoser`` with its defaults; regions are the
  significant ones it reports, explanations their top slice.
- ``kmeans``: k-means on the failures' embeddings, k in 2..10 by silhouette.
- ``umap_hdbscan``: HDBSCAN on a 5-d UMAP of the failures (the recipe
  Sliceguard and Phoenix use).
- ``domino_em``: OUR REIMPLEMENTATION of Domino's error-aware mixture (Eyuboglu
  et al., ICLR 2022; the ``domino`` 0.1.5 package pins 2022-era dependencies):
  a diagonal Gaussian mixture over PCA-reduced embeddings jointly with the
  given label and the predicted probabilities (categorical terms weighted 10),
  fitted by EM with 25 components; slices are the 5 components with the highest
  error rate above the baseline.
- ``sliceline``: the ``sliceline`` package on the binned metadata (max level 3,
  1% minimum support, top 10): the metadata side; its slices are its regions
  and their own explanations.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from blindspots_scenarios import Instance
from blindspots_scenarios.scoring import Found
from blindspots_server.core.diagnosis import Diagnoser
from blindspots_server.core.metadata_bins import bin_metadata
from blindspots_server.core.pool_filters import predicate_mask

MAX_PEER_POINTS = 20000      # peers cluster at most this many failures (a sample beyond)


def ours(inst: Instance, **params) -> Found:
    t0 = time.perf_counter()
    result = Diagnoser(**params).fit(inst.embeddings, inst.test.labels, inst.probabilities,
                                     inst.test.metadata)
    seconds = time.perf_counter() - t0
    regions = [result.region_of_sample == r.region_id for r in result.regions]
    expl = [predicate_mask(inst.test.metadata, r.explanations[0].predicates) if r.explanations else None
            for r in result.regions]
    return Found("ours", regions, expl, seconds)


def _failure_points(inst: Instance, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(inst.failed)
    if len(rows) > MAX_PEER_POINTS:
        rows = np.sort(rng.choice(rows, MAX_PEER_POINTS, replace=False))
    x = inst.embeddings[rows].astype(np.float64)
    return rows, (x - x.mean(0)) / (x.std(0) + 1e-6)


def _regions_from_labels(n: int, rows: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    out = []
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        mask = np.zeros(n, dtype=bool)
        mask[rows[labels == c]] = True
        if mask.any():
            out.append(mask)
    return out


def kmeans(inst: Instance, seed: int = 0) -> Found:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows, x = _failure_points(inst, rng)
    best, best_s = None, -2.0
    sample = rng.choice(len(x), min(len(x), 3000), replace=False)
    for k in range(2, min(10, len(x) - 1) + 1):
        labels = KMeans(k, n_init=3, random_state=seed).fit_predict(x)
        s = silhouette_score(x[sample], labels[sample]) if len(np.unique(labels[sample])) > 1 else -1
        if s > best_s:
            best, best_s = labels, s
    regions = _regions_from_labels(len(inst.failed), rows, best) if best is not None else []
    return Found("kmeans", regions, [], time.perf_counter() - t0)


def umap_hdbscan(inst: Instance, seed: int = 0) -> Found:
    import hdbscan
    import umap

    t0 = time.perf_counter()
    rows, x = _failure_points(inst, np.random.default_rng(seed))
    if len(x) < 10:
        return Found("umap_hdbscan", [], [], time.perf_counter() - t0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = umap.UMAP(n_components=5, n_neighbors=min(15, len(x) - 1), min_dist=0.0,
                        random_state=seed).fit_transform(x)
    mcs = max(5, int(round(0.02 * len(x))))
    labels = hdbscan.HDBSCAN(min_cluster_size=mcs).fit_predict(low)
    return Found("umap_hdbscan", _regions_from_labels(len(inst.failed), rows, labels), [],
                 time.perf_counter() - t0)


def domino_em(inst: Instance, seed: int = 0, components: int = 25, n_slices: int = 5,
              weight: float = 10.0, iters: int = 50, max_fit_rows: int = 20000) -> Found:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = len(inst.failed)
    z = PCA(min(128, inst.embeddings.shape[1]), random_state=seed).fit_transform(inst.embeddings)
    z = (z - z.mean(0)) / (z.std(0) + 1e-6)
    y = np.eye(inst.num_classes)[inst.test.labels]
    yh = inst.probabilities.astype(np.float64)
    fit = rng.choice(n, min(n, max_fit_rows), replace=False)
    init = KMeans(components, n_init=1, random_state=seed).fit_predict(
        np.hstack([z[fit], 3 * y[fit], 3 * yh[fit]]))
    resp = np.eye(components)[init]
    for _ in range(iters):
        params = _m_step(z[fit], y[fit], yh[fit], resp)
        new = _e_step(z[fit], y[fit], yh[fit], params, weight)
        if np.abs(new - resp).max() < 1e-4:
            resp = new
            break
        resp = new
    params = _m_step(z[fit], y[fit], yh[fit], resp)
    comp = _e_step(z, y, yh, params, weight).argmax(axis=1)
    failed = inst.failed
    base = failed.mean()
    rate = np.array([failed[comp == k].mean() if (comp == k).any() else 0 for k in range(components)])
    order = [k for k in np.argsort(-rate) if rate[k] > base][:n_slices]
    return Found("domino_em", [comp == k for k in order], [], time.perf_counter() - t0)


def _m_step(z, y, yh, resp):
    w = resp.sum(0) + 1e-9
    mean = resp.T @ z / w[:, None]
    var = resp.T @ (z * z) / w[:, None] - mean ** 2 + 1e-3
    py = (resp.T @ y + 1e-3) / (w[:, None] + 1e-3 * y.shape[1])
    pyh = (resp.T @ yh + 1e-3) / (w[:, None] + 1e-3 * yh.shape[1])
    return w / w.sum(), mean, var, np.log(py), np.log(pyh)


def _e_step(z, y, yh, params, weight):
    prior, mean, var, log_py, log_pyh = params
    # Expanded square, so memory is rows x components rather than rows x components x dims.
    inv = 1.0 / var
    sq = (z * z) @ inv.T - 2 * z @ (mean * inv).T + (mean * mean * inv).sum(1)[None]
    ll = -0.5 * (sq + np.log(var).sum(1)[None])
    ll += np.log(prior)[None] + weight * (y @ log_py.T) + weight * (yh @ log_pyh.T)
    ll -= ll.max(axis=1, keepdims=True)
    p = np.exp(ll)
    return p / p.sum(axis=1, keepdims=True)


def sliceline(inst: Instance, max_rows: int = 50000, seed: int = 0) -> Found:
    """Sliceline on the binned metadata; beyond ``max_rows`` it fits on a sample (it needs O(rows x levels^3) memory)."""
    from sliceline.slicefinder import Slicefinder

    t0 = time.perf_counter()
    binned = bin_metadata(inst.test.metadata, 5)
    codes = binned.codes
    errors = inst.failed.astype(np.float64)
    fit = np.arange(len(errors))
    if len(fit) > max_rows:
        fit = np.sort(np.random.default_rng(seed).choice(len(errors), max_rows, replace=False))
    x = np.where(codes[fit] < 0, 0, codes[fit] + 1)
    finder = Slicefinder(alpha=0.95, k=10, max_l=3, min_sup=max(10, int(0.01 * len(fit))), verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder.fit(x, errors[fit])
    regions, expl = [], []
    for top in np.asarray(finder.top_slices_):
        mask = np.ones(len(errors), dtype=bool)
        for j, v in enumerate(top):
            if v is not None and not (isinstance(v, float) and np.isnan(v)):
                mask &= codes[:, j] == int(v) - 1
        regions.append(mask)
        expl.append(mask)
    return Found("sliceline", regions, expl, time.perf_counter() - t0)


PEERS = {"kmeans": kmeans, "umap_hdbscan": umap_hdbscan, "domino_em": domino_em, "sliceline": sliceline}
