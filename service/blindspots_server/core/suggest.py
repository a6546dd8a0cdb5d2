"""Which unlabeled pool samples to label next: the suggestion engine's entry point.

``suggest_candidates`` validates its input once, then runs one strategy:

- ``targeted`` (default): near the diagnosed failure regions, weighted by their
  excess errors, re-scored by model uncertainty and slice match, diversified
  (see targeted.py);
- baselines: ``random``, ``entropy``, ``margin`` (need pool probabilities) and
  ``kcenter`` (coreset greedy away from ``labeled_embeddings``);
- ``similar``: "more like these", near the rows of ``query`` (targeted.select_similar).

Embeddings are compared by cosine distance (rows L2-normalised), like the
pool index and the diagnosis.
"""
from __future__ import annotations

import numpy as np

from .pool_filters import FILTER_OPS, MetadataFilterSpec, filter_mask, predicate_mask
from .pool_index import PoolIndex, normalise
from .results import ProgressFn, SuggestionCandidate, no_progress
from .strategies import select_entropy, select_kcenter, select_margin, select_random
from .suggest_inputs import PoolData, TargetRegion
from .targeted import query_target, select_similar, select_targeted

__all__ = ["STRATEGIES", "DEFAULT_UNCERTAINTY_WEIGHT", "DEFAULT_SLICE_WEIGHT", "TargetRegion",
           "PoolData", "MetadataFilterSpec", "FILTER_OPS", "filter_mask", "predicate_mask",
           "suggest_candidates", "budget_note", "normalise", "query_target"]

STRATEGIES = ("targeted", "random", "entropy", "margin", "kcenter", "similar")
# Strategies that read no pool rows: pool.embeddings may be None without an index.
ROWLESS = ("random", "entropy", "margin")
# Starting points, not tuned: bench/closed_loop.py passes with them; a sweep is still to do.
# Targeted: the model's uncertainty adds nothing to a candidate's score by default. Inside a
# failure region the model is wrong with confidence, so its uncertainty points at the pool's
# ambiguous rows, not at the failure: on the dev families (bench/al_dev_sweep.py) weight 0.5
# spent 12-14% of the picks on a pool's ambiguous blends (7-8% at 0) and cost 1-3 points on
# every listings family. Callers may still ask for a weight.
DEFAULT_UNCERTAINTY_WEIGHT = 0.0
DEFAULT_SLICE_WEIGHT = 0.5


def _check(strategy: str, budget: int, pool: PoolData, regions: list[TargetRegion],
           labeled: np.ndarray | None, excluded: np.ndarray | None,
           index: PoolIndex | None, query: TargetRegion | None) -> np.ndarray:
    """Validate the arguments; returns the bool mask of rows that may be picked."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(budget, bool) or int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
    if pool.embeddings is None and strategy in ROWLESS and index is None:
        # Uncertainty and random picks read no rows: the pool is its metadata's rows.
        n, dim = len(pool.metadata), None
    elif pool.embeddings is None:
        # The rows stay where the index is (shards); the index checked them when it was built.
        if strategy == "kcenter":
            raise ValueError("pool.embeddings: the kcenter strategy needs the pool's rows in this process")
        if index is None or not hasattr(index, "vectors"):
            raise ValueError("pool.embeddings is None: pass the pool's index, which gives the rows it holds")
        n, dim = index.ntotal, index.dim
    else:
        emb = np.asarray(pool.embeddings)
        if emb.ndim != 2 or emb.shape[1] == 0:
            raise ValueError(f"pool.embeddings must be a 2-d array, got shape {emb.shape}")
        n, dim = emb.shape
        if not np.isfinite(emb).all():
            raise ValueError("pool.embeddings contains NaN or infinite values")
    if pool.probabilities is not None:
        p = np.asarray(pool.probabilities)
        if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 1:
            raise ValueError(f"pool.probabilities must have shape ({n}, classes), got {p.shape}")
    if len(pool.metadata) != n:
        raise ValueError(f"pool.metadata has {len(pool.metadata)} rows, the pool {n}")
    if strategy in ("entropy", "margin") and pool.probabilities is None:
        raise ValueError(f"pool.probabilities is required by the {strategy!r} strategy")
    if labeled is not None and dim is not None and (np.ndim(labeled) != 2 or np.shape(labeled)[1] != dim):
        raise ValueError(f"labeled_embeddings must have shape (m, {dim}), got {np.shape(labeled)}")
    if index is not None and (index.ntotal != n or index.dim != dim):
        raise ValueError(f"index holds {index.ntotal} rows of dim {index.dim}, "
                         f"pool has {n} of dim {dim}")
    if strategy == "similar":
        if query is None or len(query.failure_embeddings) == 0:
            raise ValueError("query: the similar strategy needs at least one query row (query_target)")
        regions = [query]
    elif query is not None:
        raise ValueError(f"query: only the similar strategy takes query rows, not {strategy!r}")
    if strategy in ("targeted", "similar"):
        if not regions:
            raise ValueError("regions: the targeted strategy needs at least one failure region")
        for r in regions:
            f = np.asarray(r.failure_embeddings)
            if f.ndim != 2 or f.shape[1] != dim:
                raise ValueError(f"regions: region {r.region_id} failure_embeddings must have "
                                 f"shape (m, {dim}), got {f.shape}")
            if len(r.failure_indices) != len(f):
                raise ValueError(f"regions: region {r.region_id} has {len(f)} failure embeddings "
                                 f"but {len(r.failure_indices)} failure_indices")
            if r.failure_ids is not None and len(r.failure_ids) != len(f):
                raise ValueError(f"regions: region {r.region_id} failure_ids length mismatch")
            if r.slice_predicates:
                predicate_mask(pool.metadata.iloc[:0], r.slice_predicates)  # unknown column -> error
    if excluded is None:
        return np.ones(n, dtype=bool)
    excluded = np.asarray(excluded)
    if excluded.dtype != bool or excluded.shape != (n,):
        raise ValueError(f"excluded must be a bool array of shape ({n},), got "
                         f"{excluded.dtype} {excluded.shape}")
    return ~excluded


def _unit(pool: PoolData) -> np.ndarray | None:
    """The pool's rows at unit length: as given when the caller normalised them, else a copy
    (None when the caller does not hold them)."""
    if pool.embeddings is None:
        return None
    return np.asarray(pool.embeddings, dtype=np.float32) if pool.unit_rows else normalise(pool.embeddings)


class _UnitRowsWhereRead:
    """The pool's rows at unit length, normalised only where read: with an index, targeted
    reads a few thousand of a million rows, and normalising them all cost half its time
    (2.2 of 4.6 s at 1M x 128-d)."""

    def __init__(self, rows: np.ndarray):
        self._rows = rows
        self.shape = rows.shape

    def __getitem__(self, which) -> np.ndarray:
        return normalise(np.asarray(self._rows[which], dtype=np.float32).reshape(-1, self.shape[1]))


def budget_note(budget: int, eligible: int) -> str:
    """The sentence that says a budget exceeds the rows left to pick from."""
    return (f"budget {budget} exceeds the {eligible} eligible pool rows (after exclusions and "
            f"filters): returning at most {eligible}")


def suggest_candidates(strategy: str, budget: int, pool: PoolData, regions: list[TargetRegion],
                       labeled_embeddings: np.ndarray | None = None,
                       excluded: np.ndarray | None = None, index: PoolIndex | None = None,
                       seed: int = 0, uncertainty_weight: float | None = None,
                       slice_weight: float | None = None,
                       progress: ProgressFn | None = None,
                       num_failures: int | None = None,
                       query: TargetRegion | None = None) -> list[SuggestionCandidate]:
    """Up to ``budget`` pool rows to label, in rank order, each with a score and a reason.

    ``excluded`` rows (already labeled, filtered out, ...) are never returned.
    ``index`` is the pool's PoolIndex (built over all pool rows), or a ShardedPoolIndex;
    without one the targeted strategy builds a temporary index. ``pool.embeddings`` may be
    None when ``index`` is given (all strategies but kcenter): targeted then reads the rows it
    scores from the index (``index.vectors``), and this process never holds the pool; and for
    random, entropy and margin, which read no rows, without an index. ``progress`` may raise to
    cancel.
    ``num_failures``: the diagnosed test set's failure count; with it, regions that hold
    under half of the failures give part of the budget to margin sampling (targeted).
    ``query``: the rows a ``similar`` suggestion finds more of (``query_target``).
    """
    progress = progress or no_progress
    allowed = _check(strategy, budget, pool, regions, labeled_embeddings, excluded, index, query)
    budget = int(budget)
    uw = DEFAULT_UNCERTAINTY_WEIGHT if uncertainty_weight is None else float(uncertainty_weight)
    sw = DEFAULT_SLICE_WEIGHT if slice_weight is None else float(slice_weight)
    if uw < 0 or not np.isfinite(uw):
        raise ValueError(f"uncertainty_weight must be >= 0, got {uncertainty_weight}")
    if sw < 0 or not np.isfinite(sw):
        raise ValueError(f"slice_weight must be >= 0, got {slice_weight}")
    progress(0.0, f"suggesting {budget} samples with the {strategy} strategy")
    eligible = int(allowed.sum())
    if budget > eligible:
        # Said, not silent: a caller asking for more than the pool can give learns it here.
        progress(0.0, budget_note(budget, eligible))
    if budget == 0 or not allowed.any():
        progress(1.0, "done")
        return []
    probs = None if pool.probabilities is None else np.asarray(pool.probabilities, dtype=np.float64)
    if strategy == "random":
        out = select_random(allowed, budget, seed)
    elif strategy == "entropy":
        out = select_entropy(probs, allowed, budget)
    elif strategy == "margin":
        out = select_margin(probs, allowed, budget)
    elif strategy == "kcenter":
        labeled = None if labeled_embeddings is None else normalise(labeled_embeddings)
        out = select_kcenter(_unit(pool), labeled, allowed, budget, seed, progress)
    else:
        rows = (_UnitRowsWhereRead(pool.embeddings)
                if index is not None and pool.embeddings is not None and not pool.unit_rows else _unit(pool))
        if strategy == "similar":
            out = select_similar(rows, probs, pool, query, allowed, budget, index, uw, progress)
        else:
            out = select_targeted(rows, probs, pool, regions, allowed, budget,
                                  index, uw, sw, progress, num_failures, seed)
    progress(1.0, "done")
    return out
