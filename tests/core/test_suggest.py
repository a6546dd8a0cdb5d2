"""suggest_candidates: strategy contracts, targeting, metadata filters."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from blindspots_server.core.pool_index import PoolIndex
from blindspots_server.core.results import Predicate
from blindspots_server.core.suggest import (STRATEGIES, MetadataFilterSpec, PoolData, TargetRegion,
                                            filter_mask, predicate_mask, query_target, suggest_candidates)
from blindspots_server.core.targeted import allocate_budget
from blindspots_scenarios.listings import DATA_GAPS, make_scenario, train_model

NORTH_CAM_E = (Predicate("camera", "eq", "cam_e"), Predicate("region", "eq", "north"))


@pytest.fixture(scope="module")
def world():
    s = make_scenario(n_train=2000, n_test=3000, n_pool=6000, seed=3)
    model = train_model(s.train, epochs=15)
    test_probs = model.predict_proba(s.test.embeddings)
    failed = test_probs.argmax(1) != s.test.labels
    # Regions from the planted truth: the test of targeting, independent of the diagnosis.
    regions = []
    for rid, name in enumerate(DATA_GAPS):
        rows = np.flatnonzero(failed & s.test.conditions[name].to_numpy())
        regions.append(TargetRegion(
            region_id=rid, excess_errors=float(len(rows)), failure_embeddings=s.test.embeddings[rows],
            failure_indices=rows, failure_ids=s.test.ids[rows],
            slice_predicates=NORTH_CAM_E if name == "north_cam_e" else ()))
    pool = PoolData(s.pool.embeddings, model.predict_proba(s.pool.embeddings), s.pool.metadata)
    return s, pool, regions


def call(world, strategy, budget=120, **kw):
    s, pool, regions = world
    kw.setdefault("labeled_embeddings", s.train.embeddings)
    if strategy == "similar":
        rows = np.flatnonzero(s.test.conditions["dark"].to_numpy())[:20]
        kw.setdefault("query", query_target(s.test.embeddings[rows], rows, s.test.ids[rows]))
    return suggest_candidates(strategy, budget, pool, regions, **kw)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_contract_budget_ranks_reasons_determinism(world, strategy):
    out = call(world, strategy, seed=5)
    assert len(out) == 120
    rows = [c.pool_index for c in out]
    assert len(set(rows)) == len(rows)
    assert all(0 <= r < len(world[1].embeddings) for r in rows)
    assert all(c.reason and math.isfinite(c.score) for c in out)
    if strategy not in ("targeted", "similar"):   # these order by diversity gain; baselines rank by score
        scores = [c.score for c in out]
        assert scores == sorted(scores, reverse=True)
    assert call(world, strategy, seed=5) == out


@pytest.mark.parametrize("strategy", ["targeted", "kcenter"])
def test_rows_normalised_by_the_caller_give_the_same_picks(world, strategy):
    from dataclasses import replace

    from blindspots_server.core.pool_index import normalise_in_place
    s, pool, regions = world
    unit = replace(pool, embeddings=normalise_in_place(pool.embeddings.copy()), unit_rows=True)
    expected = call(world, strategy, seed=5)
    assert suggest_candidates(strategy, 120, unit, regions, labeled_embeddings=s.train.embeddings, seed=5) == expected


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exclusions_are_never_returned(world, strategy):
    n = len(world[1].embeddings)
    excluded = np.zeros(n, dtype=bool)
    first = [c.pool_index for c in call(world, strategy)]
    excluded[first[:60]] = True
    excluded[::3] = True
    out = call(world, strategy, excluded=excluded)
    assert len(out) == 120
    assert not excluded[[c.pool_index for c in out]].any()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_budget_larger_than_allowed_rows_returns_them_all(world, strategy):
    n = len(world[1].embeddings)
    excluded = np.ones(n, dtype=bool)
    excluded[:40] = False
    out = call(world, strategy, budget=100, excluded=excluded)
    assert len(out) <= 40
    assert all(c.pool_index < 40 for c in out)
    assert call(world, strategy, budget=0) == []


def test_targeted_concentrates_on_planted_failure_regions(world):
    s = world[0]
    gap = s.pool.in_data_gap
    targeted = [c.pool_index for c in call(world, "targeted", budget=200)]
    random = [c.pool_index for c in call(world, "random", budget=200)]
    assert gap[targeted].mean() >= 0.7
    assert gap[targeted].mean() > 2 * gap[random].mean()


def test_targeted_splits_budget_by_impact_and_explains(world):
    s, pool, regions = world
    out = call(world, "targeted", budget=150)
    counts = np.bincount([c.region_id for c in out], minlength=len(regions))
    # Distinct failures: no merging; shares by the square root of excess errors.
    expected = allocate_budget(150, np.sqrt([r.excess_errors for r in regions]))
    assert counts.tolist() == expected.tolist()
    north = [c for c in out if c.region_id == 0]
    # ``slice`` names the region's slice only for picks that match it (the proto's meaning);
    # without the slice bonus both kinds of picks occur.
    for weight in (None, 0.0):
        near = [c for c in call(world, "targeted", budget=150, slice_weight=weight) if c.region_id == 0]
        meta = pool.metadata.iloc[[c.pool_index for c in near]]
        matches = ((meta.camera == "cam_e") & (meta.region == "north")).to_numpy()
        assert [c.slice for c in near] == ["camera=cam_e & region=north" if m else "" for m in matches]
        assert matches.any() and (weight is None or not matches.all())
    assert all("near failure region 0" in c.reason and "camera=cam_e & region=north" in c.reason
               for c in north)
    matched = [c for c in north if "matches the region's slice" in c.reason]
    meta = pool.metadata.iloc[[c.pool_index for c in matched]]
    assert len(matched) > 0 and (meta.camera == "cam_e").all() and (meta.region == "north").all()
    for c in out:
        region = regions[c.region_id]
        assert c.nearest_failure_index in set(region.failure_indices.tolist())
        assert s.test.ids[c.nearest_failure_index] in c.reason
        assert 0 <= c.distance <= 2
    # Any prefix is a fair share: the first third holds every region.
    assert {c.region_id for c in out[:50]} == {0, 1, 2}


def test_targeted_uses_a_given_index_like_its_own(world):
    s, pool, regions = world
    index = PoolIndex(pool.embeddings.shape[1]).build(pool.embeddings)
    rows = [(c.pool_index, c.region_id, c.nearest_failure_index) for c in call(world, "targeted", index=index)]
    assert rows == [(c.pool_index, c.region_id, c.nearest_failure_index) for c in call(world, "targeted")]
    with pytest.raises(ValueError, match="index"):
        call(world, "targeted", index=PoolIndex(pool.embeddings.shape[1]).build(pool.embeddings[:10]))


def test_targeted_without_the_pool_rows_reads_them_from_the_index(world):
    from dataclasses import replace

    from blindspots_server.core.sharded_index import ShardedPoolIndex
    s, pool, regions = world
    dim = pool.embeddings.shape[1]
    rowless = replace(pool, embeddings=None)
    expected = call(world, "targeted")
    for index in (PoolIndex(dim, kind="flat").build(pool.embeddings),
                  ShardedPoolIndex(dim, shards=3, kind="flat").build(pool.embeddings)):
        out = suggest_candidates("targeted", 120, rowless, regions, index=index)
        # Exact indexes hold the rows themselves: the same picks, in the same order.
        assert ([(c.pool_index, c.region_id, c.nearest_failure_index) for c in out]
                == [(c.pool_index, c.region_id, c.nearest_failure_index) for c in expected])
        np.testing.assert_allclose([c.score for c in out], [c.score for c in expected], rtol=1e-5)
    # A compressed index gives decoded rows: close to the rows, and the picks stay in the regions.
    sq8 = ShardedPoolIndex(dim, shards=2, kind="ivfsq8").build(pool.embeddings)
    out = suggest_candidates("targeted", 120, rowless, regions, index=sq8)
    assert len(out) == 120 and len({c.pool_index for c in out}) == 120
    shared = {c.pool_index for c in out} & {c.pool_index for c in expected}
    assert len(shared) >= 60, len(shared)
    with pytest.raises(ValueError, match="kcenter"):
        suggest_candidates("kcenter", 120, rowless, regions, index=sq8)
    with pytest.raises(ValueError, match="index"):
        suggest_candidates("targeted", 120, rowless, regions)


@pytest.mark.parametrize("strategy", ["random", "entropy", "margin"])
def test_uncertainty_and_random_picks_need_no_pool_rows(world, strategy):
    from dataclasses import replace
    s, pool, regions = world
    rowless = replace(pool, embeddings=None)
    excluded = np.zeros(len(pool.embeddings), bool)
    excluded[::3] = True
    out = suggest_candidates(strategy, 120, rowless, regions, excluded=excluded, seed=4)
    assert out == suggest_candidates(strategy, 120, pool, regions, excluded=excluded, seed=4)
    with pytest.raises(ValueError, match="kcenter"):
        suggest_candidates("kcenter", 120, rowless, regions, index=PoolIndex(pool.embeddings.shape[1]))
    with pytest.raises(ValueError, match="index"):
        suggest_candidates("targeted", 120, rowless, regions)


def test_an_index_in_this_process_serves_the_rows_when_few_are_allowed(world):
    """With most of the pool excluded (a filter, many rounds) targeted searches an index of the
    allowed rows alone; without the rows in this process an exact in-process index gives them: the
    same picks as with the rows. Shards keep answering from their own search, which digs deeper."""
    from dataclasses import replace

    from blindspots_server.core.sharded_index import ShardedPoolIndex
    s, pool, regions = world
    dim = pool.embeddings.shape[1]
    excluded = np.random.default_rng(0).random(len(pool.embeddings)) > 0.1      # 10% allowed
    expected = call(world, "targeted", excluded=excluded)
    assert all(not excluded[c.pool_index] for c in expected)
    for kind in ("flat", "ivf"):
        index = PoolIndex(dim, kind=kind).build(pool.embeddings)
        assert index.holds_rows
        out = suggest_candidates("targeted", 120, replace(pool, embeddings=None), regions, index=index,
                                 excluded=excluded)
        assert ([(c.pool_index, c.region_id, c.nearest_failure_index) for c in out]
                == [(c.pool_index, c.region_id, c.nearest_failure_index) for c in expected]), kind
    assert not PoolIndex(dim, kind="ivfsq8").build(pool.embeddings).holds_rows
    sharded = ShardedPoolIndex(dim, shards=2, kind="flat").build(pool.embeddings)
    out = suggest_candidates("targeted", 120, replace(pool, embeddings=None), regions, index=sharded,
                             excluded=excluded)
    assert len(out) == 120 and all(not excluded[c.pool_index] for c in out)


def test_similar_finds_more_of_the_query_rows_condition(world):
    s, pool, regions = world
    dark = s.pool.conditions["dark"].to_numpy()
    out = call(world, "similar", budget=150)
    rows = [c.pool_index for c in out]
    assert dark[rows].mean() >= 5 * dark.mean()
    q_rows = np.flatnonzero(s.test.conditions["dark"].to_numpy())[:20]
    # Near a query row, or near their mean (run row -1), which joins them as 6 rows of 26.
    assert {c.nearest_failure_index for c in out} <= set(q_rows.tolist()) | {-1}
    assert all(c.region_id == -1 and c.slice == "" for c in out)
    assert all(c.reason.startswith("like the 20 query rows; nearest query row ") == (c.nearest_failure_index >= 0)
               for c in out)
    assert any(c.nearest_failure_index == -1 for c in out)
    # Without the mean the picks follow the query rows alone.
    from blindspots_server.core import targeted
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(targeted, "QUERY_MEAN_SHARE", 0.0)
        alone = call(world, "similar", budget=150)
    assert all(c.nearest_failure_index >= 0 for c in alone) and alone != out
    # Without the pool rows in this process (Ray shards hold them): the same picks from an exact index.
    from dataclasses import replace

    from blindspots_server.core.sharded_index import ShardedPoolIndex
    rowless = replace(pool, embeddings=None)
    sharded = ShardedPoolIndex(pool.embeddings.shape[1], shards=3, kind="flat").build(pool.embeddings)
    again = suggest_candidates("similar", 150, rowless, [], index=sharded,
                               query=query_target(s.test.embeddings[q_rows], q_rows, s.test.ids[q_rows]))
    assert [c.pool_index for c in again] == rows
    # Query rows belong to "similar" alone, and "similar" needs some.
    with pytest.raises(ValueError, match="query"):
        suggest_candidates("similar", 10, pool, regions)
    with pytest.raises(ValueError, match="query"):
        call(world, "margin", query=query_target(s.test.embeddings[q_rows], q_rows))


def test_similar_fills_its_budget_from_a_pool_of_near_duplicates():
    """Query rows whose neighbourhoods overlap (a pool of exact duplicates of one of them) find few
    rows per search; "similar" has no next region to pass a shortfall on to, so it searches on
    until it has enough (a case the property suite found: 21 of 22 picks)."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(51, 6)).astype(np.float32)
    emb[:42] = emb[0]
    excluded = np.zeros(51, bool)
    excluded[[0, 2, 3, 13, 14, 15, 18, 25, 26, 33, 35, 37, 42, 43, 44, 45, 47, 49]] = True   # 33 allowed
    pool = PoolData(emb, None, pd.DataFrame({"site": ["a"] * 51}))
    query = query_target(np.vstack([emb[:1], rng.normal(size=(4, 6))]).astype(np.float32), np.arange(5),
                         np.array([f"q{i}" for i in range(5)]))
    out = suggest_candidates("similar", 22, pool, [], excluded=excluded, query=query)
    assert len(out) == 22 and len({c.pool_index for c in out}) == 22 and not excluded[[c.pool_index for c in out]].any()


def test_similar_with_few_query_rows_searches_deep_enough_for_a_large_budget(world):
    s, pool, _ = world
    row = np.flatnonzero(s.test.conditions["dark"].to_numpy())[:1]
    # One query row and a budget beyond a region's per-failure search depth (512 rows).
    out = suggest_candidates("similar", 1500, pool, [], query=query_target(s.test.embeddings[row], row))
    assert len(out) == 1500 and len({c.pool_index for c in out}) == 1500
    # Nearer rows rank first, give or take the damping of near-duplicates.
    d = np.array([c.distance for c in out])
    assert np.median(d[:300]) < np.median(d[-300:])


def test_targeted_picks_are_not_near_duplicates(world):
    s, pool, regions = world
    dup = pool.embeddings.copy()
    dup[1::2] = dup[0::2]          # every row has an exact twin
    twin_pool = PoolData(dup, pool.probabilities, pool.metadata)
    out = suggest_candidates("targeted", 100, twin_pool, regions)
    rows = np.array([c.pool_index for c in out])
    assert len(set(rows // 2)) == len(rows)


def test_label_noise_regions_get_a_reduced_share(world, monkeypatch):
    from blindspots_server.core import targeted_budget

    s, pool, regions = world
    gaps = [r for r in regions if r.region_id != 1]
    same = regions[1]
    noise = TargetRegion(region_id=9, excess_errors=same.excess_errors, failure_embeddings=same.failure_embeddings,
                         failure_indices=same.failure_indices, failure_ids=same.failure_ids, kind="label_noise")
    as_gap = sum(c.region_id == 1 for c in suggest_candidates("targeted", 120, pool, regions))
    as_noise = [c for c in suggest_candidates("targeted", 120, pool, gaps + [noise]) if c.region_id == 9]
    # Half the weight in the square-root split: fewer picks than as a data gap, but some, and said so.
    assert 0 < len(as_noise) < as_gap
    assert all("typed label noise" in c.reason for c in as_noise)
    # Weight 0: no collection budget at all; alone, the budget goes to margin sampling, said so.
    monkeypatch.setattr(targeted_budget, "LABEL_NOISE_WEIGHT", 0.0)
    assert 9 not in {c.region_id for c in suggest_candidates("targeted", 60, pool, gaps + [noise])}
    alone = suggest_candidates("targeted", 60, pool, [noise])
    margin = suggest_candidates("margin", 60, pool, [noise])
    assert [c.pool_index for c in alone] == [c.pool_index for c in margin]
    assert all(c.region_id == -1 and "label noise" in c.reason for c in alone)
    without_probs = PoolData(pool.embeddings, None, pool.metadata)
    assert {c.region_id for c in suggest_candidates("targeted", 60, without_probs, [noise])} == {9}


def _fragments(region: TargetRegion, parts: int, first_id: int, keep_slice: bool) -> list[TargetRegion]:
    """``region`` cut into ``parts`` random pieces, as a clustering might cut one failure."""
    cut = np.random.default_rng(0).integers(0, parts, len(region.failure_indices))
    return [TargetRegion(region_id=first_id + k, excess_errors=region.excess_errors / parts,
                         failure_embeddings=region.failure_embeddings[cut == k],
                         failure_indices=region.failure_indices[cut == k],
                         failure_ids=region.failure_ids[cut == k],
                         slice_predicates=region.slice_predicates if keep_slice else ())
            for k in range(parts)]


@pytest.mark.parametrize("keep_slice", [True, False])
def test_fragments_of_one_failure_share_one_budget(world, keep_slice):
    s, pool, regions = world
    whole = call(world, "targeted", budget=150)
    north_whole = sum(c.region_id == 0 for c in whole)
    cut = _fragments(regions[0], 3, 10, keep_slice) + regions[1:]
    out = suggest_candidates("targeted", 150, pool, cut)
    north_cut = sum(c.region_id >= 10 for c in out)
    assert north_cut == north_whole
    assert any("merged" in c.reason for c in out if c.region_id >= 10)


def test_fragments_of_different_kinds_are_not_merged(world, monkeypatch):
    """A label-noise fragment next to a data-gap one stays apart: merged, the group took its
    head's kind, so a data gap could lose half its weight and get "relabel" advice."""
    from dataclasses import replace

    from blindspots_server.core import targeted_budget

    s, pool, regions = world
    gap, noise = _fragments(regions[0], 2, 10, keep_slice=False)
    noise = replace(noise, kind="label_noise", excess_errors=2 * gap.excess_errors)
    parts = [gap, noise] + regions[1:]
    out = suggest_candidates("targeted", 150, pool, parts)
    assert not any("merged" in c.reason for c in out)
    assert {10, 11} <= {c.region_id for c in out}
    assert not any("label noise" in c.reason for c in out if c.region_id == 10)
    # The same two fragments, both data gaps, are one failure.
    same = suggest_candidates("targeted", 150, pool, [gap, replace(noise, kind="data_gap")] + regions[1:])
    assert any("merged" in c.reason for c in same)
    # The switch the dev sweep compared (bench/al_dev_sweep.py): merging across kinds.
    monkeypatch.setattr(targeted_budget, "MERGE_ACROSS_KINDS", True)
    merged = suggest_candidates("targeted", 150, pool, parts)
    assert all("typed label noise" in c.reason for c in merged if c.region_id in (10, 11))


def test_a_weak_diagnosis_gives_way_to_margin_sampling(world, monkeypatch):
    from blindspots_server.core import targeted_budget

    s, pool, regions = world
    in_regions = sum(len(r.failure_indices) for r in regions)
    # Regions holding 60% of the failures: a diagnosis strong enough to follow alone.
    strong = call(world, "targeted", budget=100, num_failures=int(in_regions / 0.6))
    assert all(c.region_id >= 0 for c in strong)
    # Holding 25%: margin takes 1 - 0.25 / 0.5 = half of the budget, said per pick.
    out = call(world, "targeted", budget=100, num_failures=4 * in_regions)
    margin_picks = [c for c in out if c.region_id == -1]
    assert len(margin_picks) == 50
    assert all("margin" in c.reason and "explain 25%" in c.reason for c in margin_picks)
    # Interleaved: any prefix holds both kinds.
    assert {c.region_id == -1 for c in out[:8]} == {True, False}
    assert len({c.pool_index for c in out}) == 100
    # The proportional rule gives margin the whole unexplained share.
    monkeypatch.setattr(targeted_budget, "FALLBACK_BASIS", "failures")
    assert sum(c.region_id == -1 for c in call(world, "targeted", budget=100,
                                                num_failures=4 * in_regions)) == 75


def test_a_pool_without_probabilities_still_fills_the_budget(world, monkeypatch):
    from dataclasses import replace

    from blindspots_server.core import targeted

    s, pool, regions = world
    bare = replace(pool, probabilities=None)
    small = [replace(regions[0], failure_embeddings=regions[0].failure_embeddings[:2],
                     failure_indices=regions[0].failure_indices[:2], failure_ids=regions[0].failure_ids[:2])]
    # Two failures with at most 8 neighbours each: the neighbourhood holds at most 16 rows.
    monkeypatch.setattr(targeted, "MAX_K_PER_FAILURE", 8)
    out = suggest_candidates("targeted", 40, bare, small, seed=2)
    assert len(out) == 40 and len({c.pool_index for c in out}) == 40
    near = [c for c in out if c.region_id == 0]
    rest = [c for c in out if c.region_id == -1]
    assert 0 < len(near) <= 16 and len(near) + len(rest) == 40
    assert all("used up" in c.reason and "random sample" in c.reason for c in rest)
    assert suggest_candidates("targeted", 40, bare, small, seed=2) == out


def test_uncertainty_weight_changes_scores_and_reason(world):
    s, pool, regions = world
    plain = suggest_candidates("targeted", 50, PoolData(pool.embeddings, None, pool.metadata), regions)
    assert all("uncertainty" not in c.reason for c in plain)
    assert all("uncertainty" in c.reason for c in call(world, "targeted", budget=50))
    heavy = call(world, "targeted", budget=50, uncertainty_weight=5.0)
    assert [c.pool_index for c in heavy] != [c.pool_index for c in plain]


def test_kcenter_moves_away_from_labeled_data(world):
    s, pool, _ = world
    labeled = pool.embeddings[:3000]
    out = call(world, "kcenter", budget=50, labeled_embeddings=labeled)
    assert all(c.pool_index >= 3000 or c.distance > 0 for c in out)
    no_labels = call(world, "kcenter", budget=50, labeled_embeddings=None)
    assert len(no_labels) == 50


def test_progress_is_reported_and_cancellation_propagates(world):
    seen = []
    call(world, "targeted", progress=lambda f, stage: seen.append((f, stage)))
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0 and len(seen) >= 4

    class Cancelled(Exception):
        pass

    def cancel(fraction, stage):
        if fraction > 0:
            raise Cancelled
    with pytest.raises(Cancelled):
        call(world, "targeted", progress=cancel)


@pytest.mark.parametrize("kwargs, word", [
    (dict(strategy="best"), "strategy"),
    (dict(budget=-1), "budget"),
    (dict(budget=2.5), "budget"),
    (dict(excluded=np.zeros(3, dtype=bool)), "excluded"),
    (dict(labeled_embeddings=np.zeros((4, 3))), "labeled_embeddings"),
    (dict(uncertainty_weight=-1.0), "uncertainty_weight"),
    (dict(regions=[]), "regions"),
])
def test_invalid_input_names_the_argument(world, kwargs, word):
    s, pool, regions = world
    args = dict(strategy="targeted", budget=10, pool=pool, regions=regions)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        suggest_candidates(**args)


def test_uncertainty_baselines_need_probabilities(world):
    s, pool, regions = world
    bare = PoolData(pool.embeddings, None, pool.metadata)
    for strategy in ("entropy", "margin"):
        with pytest.raises(ValueError, match="pool.probabilities"):
            suggest_candidates(strategy, 10, bare, regions)


# -- metadata filters ------------------------------------------------------------
@pytest.fixture
def meta():
    return pd.DataFrame({
        "camera": ["cam_a", "cam_e", None, "cam_e"],
        "price": [100.0, 250.0, np.nan, 400.0],
        "rooms": [1, 2, 3, 4],
        "listed_at": pd.to_datetime(["2025-01-01", "2025-03-01", None, "2025-06-30 12:00"],
                                    format="mixed"),
    })


def F(column, op, *values, number=math.nan):
    return MetadataFilterSpec(column, op, tuple(values), number)


@pytest.mark.parametrize("filters, expected", [
    ([], [1, 1, 1, 1]),
    ([F("camera", "eq", "cam_e")], [0, 1, 0, 1]),
    ([F("camera", "ne", "cam_e")], [1, 0, 1, 0]),
    ([F("camera", "in", "cam_a", "cam_e")], [1, 1, 0, 1]),
    ([F("price", "lt", number=250)], [1, 0, 0, 0]),
    ([F("price", "le", number=250)], [1, 1, 0, 0]),
    ([F("price", "gt", number=250)], [0, 0, 0, 1]),
    ([F("price", "ge", number=250)], [0, 1, 0, 1]),
    ([F("rooms", "eq", "2")], [0, 1, 0, 0]),
    ([F("rooms", "eq", number=3)], [0, 0, 1, 0]),
    ([F("rooms", "in", "1", "4")], [1, 0, 0, 1]),
    ([F("camera", "eq", "cam_e"), F("price", "gt", number=300)], [0, 0, 0, 1]),
    # Timestamps compare as unix microseconds.
    ([F("listed_at", "ge", number=pd.Timestamp("2025-03-01").value // 1000)], [0, 1, 0, 1]),
    ([F("listed_at", "eq", "2025-03-01")], [0, 1, 0, 0]),
])
def test_filter_mask_semantics(meta, filters, expected):
    assert filter_mask(meta, filters).astype(int).tolist() == expected


def test_filter_mask_errors_name_the_problem(meta):
    with pytest.raises(ValueError, match="'colour'"):
        filter_mask(meta, [F("colour", "eq", "red")])
    with pytest.raises(ValueError, match="op"):
        filter_mask(meta, [F("camera", "like", "cam")])
    with pytest.raises(ValueError, match="numeric"):
        filter_mask(meta, [F("camera", "lt", number=3)])
    with pytest.raises(ValueError, match="finite number"):
        filter_mask(meta, [F("price", "lt")])


def test_predicate_mask_for_region_slices(meta):
    assert predicate_mask(meta, (Predicate("camera", "eq", "cam_e"),)).tolist() == [0, 1, 0, 1]
    assert predicate_mask(meta, (Predicate("price", "range", low=200, high=400),)).tolist() == [0, 1, 0, 0]
    assert predicate_mask(meta, (Predicate("listed_at", "month", "3"),)).tolist() == [0, 1, 0, 0]
    assert predicate_mask(meta, (Predicate("price", "missing"),)).tolist() == [0, 0, 1, 0]


def test_lazy_diverse_order_matches_eager_greedy():
    """The heap-based greedy picks exactly what re-scoring every row after every pick picks."""
    from blindspots_server.core.pool_index import normalise
    from blindspots_server.core.targeted import _diverse_order

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(20, 16))
    x = normalise((centres[rng.integers(0, 20, 600)] + 0.05 * rng.normal(size=(600, 16))).astype(np.float32))
    score = rng.uniform(0.5, 1.5, 600)
    earlier = normalise(rng.normal(size=(5, 16)).astype(np.float32))
    order, gains = _diverse_order(x, score, 150, earlier)

    # Eager reference, same radius and damping rule.
    probe = np.linspace(0, 599, 256).astype(np.int64)
    d = 1.0 - x[probe] @ x.T
    d[np.arange(len(probe)), probe] = np.inf
    radius = max(float(np.median(d.min(axis=1))), 1e-6)
    damp = np.clip((1.0 - (x @ earlier.T).max(axis=1)) / radius, 0.0, 1.0).astype(np.float64)
    picked = np.zeros(600, bool)
    expected = []
    for _ in range(150):
        gain = np.where(picked, -np.inf, score * damp)
        j = int(np.argmax(gain))
        expected.append(j)
        picked[j] = True
        damp = np.minimum(damp, np.clip((1.0 - x @ x[j]) / radius, 0.0, 1.0))
    assert order.tolist() == expected
    assert np.all(np.diff(gains) <= 1e-9), "greedy gains never increase"


def test_diverse_order_on_many_candidates_stays_close_to_exact_greedy():
    """Beyond EXACT_PAIRS_MAX_ROWS the close pairs come from an inverted-file search."""
    from blindspots_server.core.pool_index import normalise
    from blindspots_server.core.targeted import EXACT_PAIRS_MAX_ROWS, _diverse_order

    n = EXACT_PAIRS_MAX_ROWS + 1000
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(300, 16))
    x = normalise((centres[rng.integers(0, 300, n)] + 0.05 * rng.normal(size=(n, 16))).astype(np.float32))
    score = rng.uniform(0.5, 1.5, n)
    order, _ = _diverse_order(x, score, 400, np.zeros((0, 16), np.float32))
    assert len(set(order.tolist())) == 400

    probe = np.linspace(0, n - 1, 256).astype(np.int64)
    d = 1.0 - x[probe] @ x.T
    d[np.arange(len(probe)), probe] = np.inf
    radius = max(float(np.median(d.min(axis=1))), 1e-6)
    damp = np.ones(n)
    picked = np.zeros(n, bool)
    expected = []
    for _ in range(400):
        j = int(np.argmax(np.where(picked, -np.inf, score * damp)))
        expected.append(j)
        picked[j] = True
        damp = np.minimum(damp, np.clip((1.0 - x @ x[j]) / radius, 0.0, 1.0))
    assert len(set(order.tolist()) & set(expected)) >= 0.95 * 400


def test_regions_whose_labels_do_not_follow_their_inputs_get_a_smaller_share(world, monkeypatch):
    """Two equal regions: the one whose failures' labels the label test found unpredictable
    gets a quarter of the weight (its picks say why); with the rule off they get equal shares."""
    from collections import Counter
    from dataclasses import replace

    from blindspots_server.core import targeted_budget

    s, pool, regions = world
    a = replace(regions[0], region_id=20, labels_predictable=True)
    b = replace(regions[1], region_id=21, labels_predictable=False, excess_errors=a.excess_errors)
    out = suggest_candidates("targeted", 100, pool, [a, b])
    per = Counter(c.region_id for c in out)
    assert per[20] == 80 and per[21] == 20
    assert all("do not follow their inputs" in c.reason for c in out if c.region_id == 21)
    assert not any("do not follow their inputs" in c.reason for c in out if c.region_id == 20)
    monkeypatch.setattr(targeted_budget, "UNPREDICTABLE_WEIGHT", None)
    per = Counter(c.region_id for c in suggest_candidates("targeted", 100, pool, [a, b]))
    assert per[20] == per[21] == 50


@pytest.mark.parametrize("excluded_share", [0.0, 0.97])
def test_targeted_with_an_index_normalises_only_the_rows_it_reads_and_picks_the_same(world, excluded_share):
    """Raw pool rows plus an index (normalised where read) give the picks and scores of rows
    the caller normalised up front, with the index answering or, when most rows are excluded,
    a local index over the allowed ones."""
    from dataclasses import replace

    from blindspots_server.core.pool_index import normalise

    s, pool, regions = world
    index = PoolIndex(pool.embeddings.shape[1]).build(pool.embeddings)
    excluded = np.random.default_rng(0).random(len(pool.embeddings)) < excluded_share
    lazy = suggest_candidates("targeted", 60, pool, regions, index=index, excluded=excluded)
    eager = suggest_candidates("targeted", 60, replace(pool, embeddings=normalise(pool.embeddings), unit_rows=True),
                               regions, index=index, excluded=excluded)
    assert [(c.pool_index, c.score) for c in lazy] == [(c.pool_index, c.score) for c in eager]
    assert len(lazy) == 60 and not excluded[[c.pool_index for c in lazy]].any()


def test_unpredictable_labels_weigh_down_a_share_not_the_diagnosis(world, monkeypatch):
    """Regions whose labels the label test found unpredictable get a quarter of the split, but
    their failures still count as explained: a diagnosis holding most failures in such regions
    is not "weak", so margin sampling does not take the budget."""
    from dataclasses import replace

    from blindspots_server.core import targeted_budget

    s, pool, regions = world
    hard = [replace(r, labels_predictable=False) for r in regions]
    held = sum(len(r.failure_indices) for r in hard)
    out = suggest_candidates("targeted", 100, pool, hard, num_failures=held + held // 4)
    assert not any("margin sampling" in c.reason for c in out)
    monkeypatch.setattr(targeted_budget, "HELD_WEIGHTS", "collection")
    out = suggest_candidates("targeted", 100, pool, hard, num_failures=held + held // 4)
    assert sum("margin sampling" in c.reason for c in out) >= 50
