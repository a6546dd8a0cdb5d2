"""Property tests of the Diagnoser on generated test sets, degenerate ones included.

Any valid input (one class or many, no failures or all, duplicate or constant
embeddings, metadata with missing values, constant or all-missing columns, times)
gives a result whose numbers agree with each other; it never raises.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindspots_server.core.diagnosis import Diagnoser
from blindspots_server.core.pool_filters import predicate_mask

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def diagnosed_sets(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    # Sizes from the seed: Hypothesis' own integers sit on their bounds, where nothing is found.
    n = int(rng.integers(1, 60) if draw(st.booleans()) else rng.integers(300, 2500))
    dim = int(rng.integers(1, 9))
    classes = draw(st.sampled_from([1, 2, 3, 3, 4]))
    emb = rng.normal(size=(n, dim))
    shape = draw(st.sampled_from(["spread", "duplicates", "constant", "clusters", "clusters"]))
    if shape == "duplicates":
        emb[: n // 2] = emb[0]
    elif shape == "constant":
        emb[:] = 1.0
    elif shape == "clusters":
        group = rng.integers(0, 3, n)
        emb += 6.0 * group[:, None]
    labels = rng.integers(0, classes, n)
    error = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    predicted = np.where(rng.random(n) < error, (labels + 1) % classes, labels)
    if shape == "clusters":        # one cluster fails more: a region to find
        predicted = np.where((group == 2) & (rng.random(n) < 0.7), (labels + 1) % classes, predicted)
    probs = np.full((n, classes), 0.1 / classes)
    probs[np.arange(n), predicted] += 0.9
    probs /= probs.sum(1, keepdims=True)
    meta = None
    if draw(st.booleans()):
        meta = pd.DataFrame({
            "site": np.where((emb[:, 0] > 9) & (rng.random(n) < 0.8), "c", rng.choice(["a", "b", None], n)),
            "price": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "same": "x",
            "empty": np.full(n, np.nan),
            "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        })
    definition = draw(st.sampled_from(["mispredicted", "top_loss"]))
    return emb, labels, probs, meta, definition


@SETTINGS
@given(data=diagnosed_sets())
def test_diagnosis_of_any_valid_test_set_is_consistent(data):
    emb, labels, probs, meta, definition = data
    n = len(labels)
    res = Diagnoser(failure_definition=definition, seed=0).fit(emb, labels, probs, meta)
    assert res.num_samples == n and res.failed.shape == (n,) and res.region_of_sample.shape == (n,)
    assert res.num_failures == int(res.failed.sum())
    assert math.isclose(res.baseline_error_rate, res.num_failures / n)
    assert res.baseline_ci.low <= res.baseline_error_rate <= res.baseline_ci.high
    # Every reported region and slice is one of the hypotheses counted as tested.
    assert len(res.regions) <= res.num_regions_tested
    assert res.num_hypotheses_tested >= res.num_regions_tested + len(res.slices)
    ids = [r.region_id for r in res.regions]
    assert len(set(ids)) == len(ids)
    for r in res.regions:
        members = res.region_of_sample == r.region_id
        assert r.support == int(members.sum()) and r.failures == int((members & res.failed).sum())
        assert 0 < r.failures <= r.support
        assert 0.0 <= r.p_value <= 1.0 and 0.0 <= r.q_value <= 1.0 and r.q_value <= res.fdr_alpha
        assert r.ci.low <= r.error_rate <= r.ci.high
        assert all(0 <= c.true_label < probs.shape[1] and c.count > 0 for c in r.confusions)
        assert all(res.failed[e.index] == e.failed for e in r.typical_failures)
        for s in r.explanations:           # a region's slice: its numbers are the slice's on the test set
            assert 0.0 <= s.p_value <= 1.0 and 0 <= s.failures <= s.support
            rows = predicate_mask(meta, s.predicates)
            assert int(rows.sum()) == s.support and int(res.failed[rows].sum()) == s.failures
            assert s.recall == pytest.approx((rows & members).sum() / r.support)
            assert s.precision == pytest.approx((rows & members).sum() / s.support)
    for s in res.slices:
        assert 0.0 <= s.p_value <= 1.0 and 0 <= s.failures <= s.support <= n
        if meta is not None:
            rows = predicate_mask(meta, s.predicates)
            assert int(rows.sum()) == s.support and int(res.failed[rows].sum()) == s.failures
