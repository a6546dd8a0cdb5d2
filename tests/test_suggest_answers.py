"""What a Suggest answer says about itself, through a real server: the pool rows it could
not pick and why, a budget above the eligible rows, and ``slice`` only where a pick matches."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.core.pool_filters import predicate_mask
from blindspots_server.server.convert import predicate_from_message
from test_api import _log_scenario


def test_exclusions_are_counted_by_reason(client, small_scenario):
    s = small_scenario.scenario
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose()
    first = run.suggest(pool, budget=200)
    assert first.attrs["exclusions"] == {"pool_rows": len(s.pool), "run_ids": 0, "labeled": 0, "given_ids": 0,
                                         "earlier_picks": 0, "filtered_out": 0, "eligible": len(s.pool)}
    assert first.attrs["note"] == ""

    picked = set(first["sample_id"])
    given = [i for i in s.pool.ids[:50] if i not in picked][:25] + sorted(picked)[:5]
    second = run.suggest(pool, budget=30, strategy="random", exclude_ids=given,
                         filters=[("region", "==", "north")])
    north = (s.pool.metadata["region"] == "north").to_numpy()
    blocked = np.isin(s.pool.ids, given) | np.isin(s.pool.ids, list(picked))
    ex = second.attrs["exclusions"]
    # Each row counts under its first reason: given ids before earlier picks before filters.
    assert ex["given_ids"] == len(given)
    assert ex["earlier_picks"] == len(picked) - 5
    assert ex["filtered_out"] == int((~north & ~blocked).sum())
    assert ex["eligible"] == int((north & ~blocked).sum())
    assert ex["run_ids"] + ex["labeled"] + ex["given_ids"] + ex["earlier_picks"] + ex["filtered_out"] + ex["eligible"] \
        == len(s.pool)
    assert not set(second["sample_id"]) & (set(given) | picked)

    # allow_repeats: earlier picks are not excluded, and the answer says none were.
    again = run.suggest(pool, budget=10, strategy="margin", allow_repeats=True)
    assert again.attrs["exclusions"]["earlier_picks"] == 0


def test_budget_above_eligible_rows_is_said(client, small_scenario):
    s = small_scenario.scenario
    run, _, _ = _log_scenario(client, small_scenario)
    run.diagnose()
    # A pool of 30 rows, 10 of them the run's own (already labeled) samples.
    ids = np.concatenate([s.test.ids[:10], s.pool.ids[:20]])
    emb = np.concatenate([s.test.embeddings[:10], s.pool.embeddings[:20]])
    small = client.create_pool("small", embedding_dim=emb.shape[1], project="listings")
    small.add(ids, emb, metadata=pd.concat([s.test.metadata[:10], s.pool.metadata[:20]], ignore_index=True))
    stages = []
    with pytest.warns(UserWarning, match="budget 50 exceeds the 20 eligible pool rows"):
        picks = run.suggest(small, budget=50, strategy="kcenter",
                            progress=False)
    assert len(picks) == 20 and not set(picks["sample_id"]) & set(s.test.ids)
    assert picks.attrs["exclusions"]["run_ids"] == 10 and picks.attrs["exclusions"]["eligible"] == 20
    assert "budget 50 exceeds the 20 eligible pool rows" in picks.attrs["note"]
    # The progress stream says it too, before any candidate arrives.
    request = pb.SuggestRequest(run_id=run.id, pool_id=small.id, budget=50, strategy="random",
                                allow_repeats=True)
    for resp in client.stub.Suggest(request, timeout=60):
        if resp.WhichOneof("payload") == "progress":
            stages.append(resp.progress.stage)
        elif resp.WhichOneof("payload") == "done":
            assert resp.done.exclusions.eligible == 20 and "exceeds" in resp.done.note
    assert any("budget 50 exceeds the 20 eligible" in st for st in stages)
    # A budget within the eligible rows raises no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = run.suggest(small, budget=5, strategy="random", allow_repeats=True, progress=False)
    assert len(fine) == 5 and fine.attrs["note"] == ""


def test_candidate_slice_only_where_the_pick_matches(client, small_scenario):
    s = small_scenario.scenario
    run, pool, _ = _log_scenario(client, small_scenario)
    diagnosis = run.diagnose()
    explained = {r.id: r for r in diagnosis.message.regions if r.explanations}
    assert explained, "the scenario's diagnosis explains at least one region by metadata"
    # A strong uncertainty weight lets picks outside the slice in, so both cases occur.
    picks = run.suggest(pool, budget=300, uncertainty_weight=4.0)
    assert (picks["reason"].str.contains("matches the region's slice") == (picks["slice"] != "")).all()
    # Checked against the pool's own metadata with the region's best explanation.
    row_of = {sid: i for i, sid in enumerate(s.pool.ids)}
    checked = 0
    for region_id, group in picks.groupby("region_id"):
        if region_id not in explained:
            assert (group["slice"] == "").all()
            continue
        predicates = tuple(predicate_from_message(p) for p in explained[region_id].explanations[0].predicates)
        rows = [row_of[sid] for sid in group["sample_id"]]
        inside = predicate_mask(s.pool.metadata.iloc[rows], predicates)
        assert ((group["slice"] != "").to_numpy() == inside).all()
        checked += len(group)
    assert checked > 0 and (picks["slice"] != "").any()
    assert ((picks["slice"] == "") & picks["region_id"].isin(list(explained))).any()


def test_targeted_collects_mostly_for_data_gaps(client, small_scenario):
    s = small_scenario.scenario
    run, pool, _ = _log_scenario(client, small_scenario)
    d = run.diagnose().message
    kinds = {r.id: r.kind for r in d.regions}
    picks = run.suggest(pool, budget=200)
    assert len(picks) == 200
    # Most picks serve regions that more data can fix; a label-noise region gets a reduced share,
    # and its picks say so.
    served = picks[picks["region_id"] >= 0]
    noisy = served["region_id"].map(kinds).eq(pb.LABEL_NOISE)
    assert len(served) > 100 and noisy.mean() < 0.25
    assert served[noisy]["reason"].str.contains("typed label noise").all()
    # Picks outside the regions are margin sampling's, and say so.
    assert picks[picks["region_id"] < 0]["reason"].str.contains("follows margin sampling").all()
    gap = dict(zip(s.pool.ids, s.pool.in_data_gap))
    assert np.mean([gap[i] for i in picks["sample_id"]]) > 0.8


def _race(clients, run_id: str, pool_id: str, budget: int, allow_repeats: bool = False) -> list[list[str]]:
    """The picks of Suggest calls made at the same moment, one per client."""
    import threading

    picks: list[list[str]] = [[] for _ in clients]
    start = threading.Barrier(len(clients))

    def call(i: int) -> None:
        start.wait()
        frame = clients[i].suggest(run_id, pool_id, budget, strategy="margin", allow_repeats=allow_repeats,
                                   progress=False)
        picks[i] = frame["sample_id"].tolist()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return picks


def _margin_world(client, n_pool: int = 3000):
    rng = np.random.default_rng(5)
    run = client.create_run("race", class_names=["a", "b"], embedding_dim=8)
    p = rng.uniform(0.05, 0.95, 200)
    run.log_predictions([f"t{i}" for i in range(200)], rng.normal(size=(200, 8)), labels=rng.integers(0, 2, 200),
                        probabilities=np.stack([p, 1 - p], 1), progress=False)
    pool = client.create_pool("race-pool", embedding_dim=8, num_classes=2)
    q = rng.uniform(0.05, 0.95, n_pool)
    pool.add([f"u{i}" for i in range(n_pool)], rng.normal(size=(n_pool, 8)), probabilities=np.stack([q, 1 - q], 1),
             batch_size=100, progress=False)
    return run, pool


def test_rounds_asked_for_at_once_get_disjoint_picks(client):
    """Two labeling queues requested together for one run and pool: the second leaves out the
    first's picks, as if asked after it (with allow_repeats, both may hold the same rows)."""
    run, pool = _margin_world(client)
    first, second = _race([client, client], run.id, pool.id, 100)
    assert len(first) == len(second) == 100 and not set(first) & set(second)
    again = _race([client, client], run.id, pool.id, 100, allow_repeats=True)
    assert again[0] == again[1]          # margin is deterministic: the same rows when repeats are allowed


def test_rounds_asked_of_two_replicas_at_once_get_disjoint_picks(postgres_uri, tmp_path):
    from blindspots import Client
    from conftest import start_server

    servers = [start_server(tmp_path / f"r{i}", store=postgres_uri, files=str(tmp_path / "files")) for i in range(2)]
    clients = [Client(f"127.0.0.1:{s.port}", retries=0, timeout=120) for s in servers]
    try:
        run, pool = _margin_world(clients[0])
        picks = _race(clients, run.id, pool.id, 100)
        assert all(len(p) == 100 for p in picks) and not set(picks[0]) & set(picks[1])
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()
