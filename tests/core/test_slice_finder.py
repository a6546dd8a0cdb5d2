"""SliceFinder against the reference sliceline package, and on planted slices."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from blindspots_server.core.metadata_bins import bin_metadata, predicate_mask
from blindspots_server.core.slice_finder import SliceFinder


def _planted(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, k, n) for k in (4, 3, 5, 2, 6)], axis=1)
    p = np.full(n, 0.08)
    p[(codes[:, 0] == 1) & (codes[:, 2] == 3)] = 0.7
    p[codes[:, 4] == 5] = 0.3
    p[(codes[:, 1] == 0) & (codes[:, 3] == 1) & (codes[:, 0] == 2)] = 0.9
    return codes, (rng.random(n) < p).astype(float)


def _reference(codes, errors, alpha, k, max_l, min_sup):
    sliceline = pytest.importorskip("sliceline")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sliceline.Slicefinder(alpha=alpha, k=k, max_l=max_l, min_sup=min_sup,
                                    verbose=False).fit(codes, errors)
    return [(round(st["slice_score"], 9), frozenset((j, int(v)) for j, v in enumerate(row) if v is not None))
            for row, st in zip(ref.top_slices_, ref.top_slices_statistics_)]


@pytest.mark.parametrize("alpha, k, max_l, min_sup", [
    (0.95, 10, 3, 20), (0.6, 5, 3, 10), (0.9, 8, 2, 50), (0.99, 4, 4, 5)])
def test_same_top_slices_as_sliceline(alpha, k, max_l, min_sup):
    codes, errors = _planted()
    ours = SliceFinder(alpha, k, max_l, min_sup).fit(codes, errors)
    mine = [(round(s.score, 9), frozenset(s.items)) for s in ours.top_slices_]
    assert mine == _reference(codes, errors, alpha, k, max_l, min_sup)


def test_same_top_slices_as_sliceline_on_binned_listings():
    from blindspots_scenarios.listings import make_scenario
    s = make_scenario(n_train=100, n_test=3000, n_pool=10, seed=1)
    binned = bin_metadata(s.test.metadata, quantile_bins=5)
    errors = (s.test.conditions.any(axis=1).to_numpy() & (np.arange(3000) % 3 > 0)).astype(float)
    ours = SliceFinder(0.95, 6, 3, 30).fit(binned.codes, errors)
    mine = [(round(x.score, 9), frozenset(x.items)) for x in ours.top_slices_]
    assert mine == _reference(binned.codes, errors, 0.95, 6, 3, 30)


def test_planted_slices_come_first():
    codes, errors = _planted(n=20000)
    top = SliceFinder(alpha=0.95, k=3, max_predicates=3, min_support=50).fit(codes, errors).top_slices_
    assert set(top[0].items) == {(0, 2), (1, 0), (3, 1)} or set(top[0].items) == {(0, 1), (2, 3)}
    assert {frozenset(t.items) for t in top[:2]} == {frozenset({(0, 2), (1, 0), (3, 1)}),
                                                      frozenset({(0, 1), (2, 3)})}


def test_non_binary_errors_and_ignored_codes():
    codes, errors = _planted()
    codes = codes.copy()
    codes[::7, 2] = -1                       # no predicate for these rows on column 2
    errors = errors * np.linspace(0.5, 1.5, len(errors))
    ours = SliceFinder(0.9, 5, 3, 20).fit(codes, errors)
    for s in ours.top_slices_:
        mask = np.ones(len(codes), bool)
        for j, c in s.items:
            mask &= codes[:, j] == c
        assert s.support == mask.sum() and np.isclose(s.errors, errors[mask].sum())
    assert ours.num_evaluated_ >= len(ours.top_slices_)


def test_no_errors_gives_no_slices():
    codes, _ = _planted()
    assert SliceFinder().fit(codes, np.zeros(len(codes))).top_slices_ == []


def test_metadata_bins_cover_types():
    meta = pd.DataFrame({
        "cat": ["a", "b", None, "a", "b", "a"],
        "num": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0],
        "ts": pd.to_datetime(["2025-01-06", "2025-02-07", "2025-03-08", None, "2025-01-06", "2025-02-07"]),
        "const": [1, 1, 1, 1, 1, 1],
    })
    b = bin_metadata(meta, quantile_bins=3)
    # Timestamps: date range bins, months and the 3-month seasons that vary here
    # (Dec-Feb / Mar-May and Nov-Jan / Feb-Apr; Jan-Mar holds every row), weekdays;
    # no hour columns (all at midnight).
    assert b.columns == ["cat", "num", "ts", "month(ts)", "weekday(ts)", "month(ts)/3@12", "month(ts)/3@2"]
    assert b.groups == ["cat", "num", "ts", "month(ts)", "weekday(ts)", "month(ts)", "month(ts)"]
    for j, preds in enumerate(b.predicates):
        for code, pred in enumerate(preds):
            np.testing.assert_array_equal(b.codes[:, j] == code, predicate_mask(pred, meta), err_msg=pred.text)
    assert [p.text for p in b.predicates[3]][:3] == ["month(ts)=Jan", "month(ts)=Feb", "month(ts)=Mar"]
    assert [p.text for p in b.predicates[5]][:2] == ["month(ts) in Dec-Feb", "month(ts) in Mar-May"]
    assert b.search_only == [False] * 5 + [True] * 2       # explanations fit their own season
    # Date bins cut at midnights and print as ISO dates, not microseconds.
    assert [p.text for p in b.predicates[2]][:3] == ["ts < 2025-01-16", "ts in [2025-01-16, 2025-02-07)",
                                                     "ts >= 2025-02-07"]
