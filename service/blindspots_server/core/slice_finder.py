"""SliceLine: the top-k metadata slices where the model errs most, weighed against their size.

``SliceFinder(alpha, k, max_predicates, min_support).fit(codes, errors)`` runs on a
pre-binned integer matrix (rows x columns, codes >= 0 are levels, < 0 no
level) and an error vector. Scoring, pruning and the parent rule follow
Sagadeeva & Boehm, "SliceLine" (SIGMOD 2021); the ``sliceline`` package
implements the same search, so both return the same top slices.

Slices are evaluated per column combination with one bincount over the rows,
so the cost is O(rows) per combination that survives pruning, not per slice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import rankdata

from .results import ProgressFn, no_progress

# Candidate slices built per chunk (parents x extensions) before the progress callback
# is called again: ~0.1 s of numpy work, so a cancelled diagnosis stops well within 1 s.
_CANDIDATE_CHUNK = 200_000


@dataclass
class FoundSlice:
    """One slice: (column, code) pairs, and its statistics."""

    items: tuple[tuple[int, int], ...]
    score: float
    support: int
    errors: float
    max_error: float

    @property
    def average_error(self) -> float:
        return self.errors / self.support


class SliceFinder:
    """Exact top-k SliceLine search with size and score-bound pruning."""

    def __init__(self, alpha: float = 0.95, k: int = 10, max_predicates: int = 3,
                 min_support: int = 10):
        self.alpha = alpha
        self.k = k
        self.max_predicates = max_predicates
        self.min_support = min_support

    def fit(self, codes: np.ndarray, errors: np.ndarray, progress: ProgressFn | None = None,
            groups: list[str] | None = None) -> "SliceFinder":
        """Search the lattice; sets ``top_slices_`` (best first) and the evaluated-slice tallies.

        ``groups``: a subject per column; a slice takes at most one column of each
        (default: every column its own), so overlapping derived columns such as a
        month and a season of one timestamp are not conjoined.
        """
        progress = progress or no_progress
        codes = np.asarray(codes)
        errors = np.asarray(errors, dtype=np.float64)
        if codes.ndim != 2 or len(codes) != len(errors):
            raise ValueError(f"codes has shape {codes.shape} but errors has {len(errors)} rows")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        n, m = codes.shape
        self.n_ = n
        self.average_error_ = float(errors.mean()) if n else 0.0
        self.top_slices_: list[FoundSlice] = []
        self.evaluated_support_ = np.zeros(0, dtype=np.int64)
        self.evaluated_errors_ = np.zeros(0)
        if n == 0 or m == 0 or self.average_error_ <= 0:
            return self
        self._codes = codes.astype(np.int64)
        self._errors = errors
        self._domains = np.maximum(self._codes.max(axis=0) + 1, 1)
        self._binary = bool(np.all((errors == 0) | (errors == 1)))
        if groups is not None and len(groups) != m:
            raise ValueError(f"groups has {len(groups)} entries but codes has {m} columns")
        self._group = (np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1].ravel()
                       if groups is not None else np.arange(m))

        # Level 1: every (column, code) with enough support and some error.
        level = np.array([[j, c] for j in range(m) for c in range(self._domains[j])],
                         dtype=np.int64).reshape(-1, 1, 2)
        stats = self._evaluate(level, lambda: progress(0.0, "slice search level 1"))
        top_items, top_stats = self._update_top(level, stats, None, None)
        for lvl in range(2, min(self.max_predicates, m) + 1):
            fraction, stage = (lvl - 1) / self.max_predicates, f"slice search level {lvl}"
            progress(fraction, stage)
            tick = lambda: progress(fraction, stage)  # noqa: E731 - re-reports the level: cancel point
            valid = (stats[:, 1] >= self.min_support) & (stats[:, 2] > 0)
            level, stats = level[valid], stats[valid]
            if len(level) == 0:
                break
            threshold = self._threshold(top_stats)
            candidates, bounds = self._candidates(level, stats, threshold, tick)
            keep = (bounds > 0) & (bounds >= threshold)
            candidates = candidates[keep]
            if len(candidates) == 0:
                break
            stats = self._evaluate(candidates, tick)
            level = candidates
            top_items, top_stats = self._update_top(level, stats, top_items, top_stats)
        self.top_slices_ = [FoundSlice(tuple((int(j), int(c)) for j, c in it), float(s[0]),
                                       int(s[1]), float(s[2]), float(s[3]))
                            for it, s in zip(top_items, top_stats)] if top_items is not None else []
        return self

    @property
    def num_evaluated_(self) -> int:
        """How many slices with enough support were scored: the hypotheses tested."""
        return int(len(self.evaluated_support_))

    def _score(self, support: np.ndarray, errs: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (self.alpha * ((errs / support) / self.average_error_ - 1)
                     - (1 - self.alpha) * (self.n_ / support - 1))
        return np.nan_to_num(score, nan=-np.inf)

    def _bound(self, support: np.ndarray, errs: np.ndarray, max_err: np.ndarray) -> np.ndarray:
        """Upper bound on the score of any slice inside one with these (parent-min) statistics.

        The score is monotone in size between the probe points, so its maximum
        over feasible sizes is at min_support, the size where errors saturate, or the bound.
        """
        lo = np.full_like(support, float(self.min_support), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            sat = np.maximum(np.where(max_err > 0, errs / max_err, lo), lo)
        best = np.full(len(support), -np.inf)
        for size in (lo, np.minimum(sat, support), support.astype(np.float64)):
            size = np.maximum(size, 1.0)
            bound_errs = np.minimum(size * max_err, errs)
            with np.errstate(divide="ignore", invalid="ignore"):
                sc = (self.alpha * ((bound_errs / size) / self.average_error_ - 1)
                      - (1 - self.alpha) * (self.n_ / size - 1))
            best = np.maximum(best, np.where(size <= support, sc, -np.inf))
        return best

    def _threshold(self, top_stats: np.ndarray | None) -> float:
        if top_stats is None or len(top_stats) < self.k:
            return 0.0
        return float(np.sort(top_stats[:, 0])[::-1][self.k - 1])

    def _candidates(self, level: np.ndarray, stats: np.ndarray, threshold: float = -np.inf,
                    tick: Callable[[], None] = lambda: None) -> tuple[np.ndarray, np.ndarray]:
        """Slices one predicate longer whose every parent survived and whose score bound
        is positive and reaches ``threshold``, with their bounds.

        Built in chunks of parents (the same candidates in the same order), pruned per
        chunk, calling ``tick`` between chunks: in one pass a wide run's level 3 held
        millions of candidates for seconds, and ``tick`` is where a cancelled job stops."""
        width = level.shape[1]
        feature = self._feature_ids(level)                 # P x width, sorted ascending
        singles = np.unique(feature.ravel())
        base = int(self._offsets[-1]) + 1
        keys = self._keys(feature, base)
        order = np.argsort(keys)
        sorted_keys = keys[order]
        step = max(1, _CANDIDATE_CHUNK // max(len(singles), 1))
        items, bounds = [], []
        for start in range(0, len(feature), step):
            tick()
            cand, min_stats = self._candidate_chunk(feature, start, start + step, singles, sorted_keys, order,
                                                    stats, base)
            bound = self._bound(min_stats[:, 0], min_stats[:, 1], min_stats[:, 2])
            keep = (bound > 0) & (bound >= threshold)
            if keep.any():
                items.append(self._items(cand[keep]))
                bounds.append(bound[keep])
        if not items:
            return np.zeros((0, width + 1, 2), dtype=np.int64), np.zeros(0)
        return np.concatenate(items), np.concatenate(bounds)

    def _candidate_chunk(self, feature: np.ndarray, lo: int, hi: int, singles: np.ndarray,
                         sorted_keys: np.ndarray, order: np.ndarray, stats: np.ndarray,
                         base: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates extending parents ``lo:hi``: feature ids and their parents' min statistics."""
        width = feature.shape[1]
        part = feature[lo:hi]
        # Extend each slice by a larger feature id in a column group it does not use yet.
        p_idx, f_idx = np.nonzero(singles[None, :] > part[:, -1:])
        new_feat = singles[f_idx]
        new_group = self._group[self._column_of(new_feat)]
        used = self._group[self._column_of(part[p_idx])]
        ok = ~(used == new_group[:, None]).any(axis=1)
        p_idx, new_feat = p_idx[ok], new_feat[ok]
        cand = np.concatenate([part[p_idx], new_feat[:, None]], axis=1)
        min_stats = np.full((len(cand), 3), np.inf)
        if len(cand) == 0:
            return cand, min_stats
        # The parent rule: all width+1 sub-slices must be among the surviving slices.
        present = np.ones(len(cand), dtype=bool)
        for drop in range(width + 1):
            sub = np.delete(cand, drop, axis=1)
            sub_keys = self._keys(sub, base)
            pos = np.clip(np.searchsorted(sorted_keys, sub_keys), 0, len(sorted_keys) - 1)
            found = sorted_keys[pos] == sub_keys
            present &= found
            parent = order[pos]
            min_stats = np.minimum(min_stats, stats[parent][:, 1:4])
        return cand[present], min_stats[present]

    def _evaluate(self, level: np.ndarray, tick: Callable[[], None] = lambda: None) -> np.ndarray:
        """Columns: score, support, errors, max error; one row per slice (items P x width x 2).
        ``tick`` is called every few hundred column groups (it may raise to stop)."""
        out = np.zeros((len(level), 4))
        cols = level[:, :, 0]
        groups, group_of = np.unique(cols, axis=0, return_inverse=True)
        group_of = group_of.ravel()
        # Members of every group from one sort, not a scan of all slices per group (quadratic).
        by_group = np.argsort(group_of, kind="stable")
        bounds = np.searchsorted(group_of[by_group], np.arange(len(groups) + 1))
        for g, group_cols in enumerate(groups):
            if g % 256 == 0:
                tick()
            members = by_group[bounds[g]:bounds[g + 1]]
            sub = self._codes[:, group_cols]
            valid = (sub >= 0).all(axis=1)
            dom = self._domains[group_cols]
            mult = np.concatenate([np.cumprod(dom[::-1])[::-1][1:], [1]])
            row_keys = sub[valid] @ mult
            slice_keys = level[members, :, 1] @ mult
            e = self._errors[valid]
            if int(np.prod(dom.astype(np.float64))) <= 4 * self.n_ + 1024:
                size = int(np.prod(dom))
                support = np.bincount(row_keys, minlength=size)[slice_keys]
                errs = np.bincount(row_keys, weights=e, minlength=size)[slice_keys]
                if self._binary:
                    mx = (errs > 0).astype(np.float64)
                else:
                    full = np.zeros(size)
                    np.maximum.at(full, row_keys, e)
                    mx = full[slice_keys]
            else:
                uniq, inv = np.unique(row_keys, return_inverse=True)
                pos = np.clip(np.searchsorted(uniq, slice_keys), 0, max(len(uniq) - 1, 0))
                hit = uniq[pos] == slice_keys if len(uniq) else np.zeros(len(slice_keys), bool)
                sup_all = np.bincount(inv, minlength=len(uniq))
                err_all = np.bincount(inv, weights=e, minlength=len(uniq))
                max_all = np.zeros(len(uniq))
                np.maximum.at(max_all, inv, e)
                support = np.where(hit, sup_all[pos], 0)
                errs = np.where(hit, err_all[pos], 0.0)
                mx = np.where(hit, max_all[pos], 0.0)
            out[members, 1] = support
            out[members, 2] = errs
            out[members, 3] = mx
        out[:, 0] = self._score(out[:, 1], out[:, 2])
        tested = out[:, 1] >= self.min_support
        self.evaluated_support_ = np.concatenate([self.evaluated_support_, out[tested, 1].astype(np.int64)])
        self.evaluated_errors_ = np.concatenate([self.evaluated_errors_, out[tested, 2]])
        return out

    def _update_top(self, level, stats, top_items, top_stats):
        ok = (stats[:, 1] >= self.min_support) & (stats[:, 0] > 0)
        new_items = [tuple(map(tuple, it)) for it in level[ok]]
        new_stats = stats[ok]
        items = (top_items or []) + new_items
        all_stats = new_stats if top_stats is None else np.concatenate([top_stats, new_stats])
        if len(items) == 0:
            return [], np.zeros((0, 4))
        # Ties at the k-th score are all kept, as sliceline does.
        keep = np.flatnonzero(rankdata(-all_stats[:, 0], method="min") <= self.k)
        keep = keep[np.argsort(-all_stats[keep, 0], kind="stable")]
        return [items[i] for i in keep], all_stats[keep]

    # Feature ids number every (column, code) pair; they make slices sortable and hashable.
    @property
    def _offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self._domains)])

    def _feature_ids(self, level: np.ndarray) -> np.ndarray:
        return np.sort(self._offsets[level[:, :, 0]] + level[:, :, 1], axis=1)

    def _column_of(self, feature: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._offsets, feature, side="right") - 1

    def _items(self, feature: np.ndarray) -> np.ndarray:
        col = self._column_of(feature)
        return np.stack([col, feature - self._offsets[col]], axis=2)

    @staticmethod
    def _keys(feature: np.ndarray, base: int) -> np.ndarray:
        key = np.zeros(len(feature), dtype=np.int64)
        for j in range(feature.shape[1]):
            key = key * base + feature[:, j]
        return key
