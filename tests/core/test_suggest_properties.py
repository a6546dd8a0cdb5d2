"""Property tests of suggest_candidates on generated pools, regions and exclusions.

Whatever the regions (kinds, slices, confusions, unpredictable labels, duplicates in the
pool), every strategy returns distinct, allowed rows, as many as the budget and the
allowed rows permit, deterministically; a pick's ``slice`` names a slice its row matches.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindspots_server.core.pool_filters import predicate_mask
from blindspots_server.core.results import Predicate
from blindspots_server.core.suggest import STRATEGIES, PoolData, TargetRegion, query_target, suggest_candidates

DIM, CLASSES = 6, 3
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def worlds(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 120))
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    dupes = draw(st.integers(0, n - 1))             # exact duplicate rows: ties everywhere
    emb[:dupes] = emb[0]
    logits = rng.normal(size=(n, CLASSES)) * draw(st.sampled_from([0.0, 1.0, 5.0]))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    meta = pd.DataFrame({"site": rng.choice(["a", "b"], n), "hour": rng.integers(0, 24, n)})
    regions = []
    for rid in range(draw(st.integers(0, 4))):
        m = draw(st.integers(1, 15))
        confusion = draw(st.sampled_from([None, None, (0, 1)]))
        regions.append(TargetRegion(
            region_id=-1 if confusion else rid, excess_errors=draw(st.floats(-2.0, 50.0)),
            failure_embeddings=rng.normal(size=(m, DIM)).astype(np.float32),
            failure_indices=np.arange(m), failure_ids=np.array([f"t{i}" for i in range(m)]),
            slice_predicates=() if confusion else draw(st.sampled_from(
                [(), (Predicate("site", "eq", "a"),), (Predicate("hour", "range", None, 0, 5),)])),
            kind=draw(st.sampled_from(["data_gap", "label_noise", "mixed"])),
            labels_predictable=draw(st.sampled_from([None, True, False])), confusion=confusion))
    excluded = rng.random(n) < draw(st.sampled_from([0.0, 0.3, 0.95]))
    budget = draw(st.integers(0, n + 5))
    num_failures = draw(st.sampled_from([None, 1, 10, 1000]))
    with_probs = draw(st.sampled_from([True, True, False]))
    q = draw(st.integers(1, 6))                      # "similar": rows of a run to find more like
    query = query_target(np.concatenate([emb[:1], rng.normal(size=(q - 1, DIM))]).astype(np.float32),
                         np.arange(q), np.array([f"q{i}" for i in range(q)]))
    return PoolData(emb, probs if with_probs else None, meta), regions, excluded, budget, num_failures, query


@SETTINGS
@given(world=worlds(), strategy=st.sampled_from(STRATEGIES))
def test_picks_are_distinct_allowed_and_fill_the_budget(world, strategy):
    pool, regions, excluded, budget, num_failures, query = world
    if strategy == "targeted" and not regions or strategy in ("margin", "entropy") and pool.probabilities is None:
        return                  # a ValueError naming the argument: test_suggest.py checks those
    labeled = np.random.default_rng(1).normal(size=(5, DIM)).astype(np.float32)
    call = dict(excluded=excluded, labeled_embeddings=labeled, seed=3, num_failures=num_failures,
                query=query if strategy == "similar" else None)
    out = suggest_candidates(strategy, budget, pool, regions, **call)
    rows = [c.pool_index for c in out]
    assert len(set(rows)) == len(rows)
    assert not excluded[rows].any()
    assert len(out) == min(budget, int((~excluded).sum()))
    assert all(np.isfinite(c.score) and c.reason for c in out)
    by_id = {r.region_id: r for r in regions if r.confusion is None}
    for c in out:
        if c.slice:
            region = by_id[c.region_id]
            assert predicate_mask(pool.metadata.iloc[[c.pool_index]], region.slice_predicates)[0], c
    assert suggest_candidates(strategy, budget, pool, regions, **call) == out
