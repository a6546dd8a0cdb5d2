"""Suggest beyond the diagnosis's own targets, through a real server: "more like these" test rows
(strategy ``similar``, ``query_ids``), and a targeted round aimed at chosen regions (``region_ids``)."""
from __future__ import annotations

import subprocess
import sys

import grpc
import numpy as np
import pandas as pd
import pytest

from blindspots.errors import BlindspotsError
from blindspots.v1 import blindspots_pb2 as pb
from test_api import _log_scenario


def _dark_failures(sm, n: int) -> list[str]:
    """Test rows in the hidden "dark" condition (no metadata column says so) that the model gets wrong:
    what an engineer finds by looking at failures."""
    s = sm.scenario
    failed = sm.test_probs.argmax(axis=1) != s.test.labels
    dark = s.test.conditions["dark"].to_numpy()
    return list(s.test.ids[dark & failed][:n])


def test_more_like_these_test_rows_finds_their_hidden_condition_in_the_pool(client, small_scenario):
    s = small_scenario.scenario
    run, pool, _ = _log_scenario(client, small_scenario)
    query = _dark_failures(small_scenario, 15)
    assert len(query) == 15
    # No diagnosis is needed: the rows to find more of are given.
    picks = run.suggest(pool, budget=120, query_ids=query, progress=False)
    assert len(picks) == 120 and picks["rank"].tolist() == list(range(1, 121))
    assert picks["sample_id"].is_unique and not set(picks["sample_id"]) & set(s.test.ids)
    dark_pool = set(s.pool.ids[s.pool.conditions["dark"].to_numpy()])
    share = np.isin(picks["sample_id"], list(dark_pool)).mean()
    base = len(dark_pool) / len(s.pool)
    random_picks = run.suggest(pool, budget=120, strategy="random", progress=False)
    random_share = np.isin(random_picks["sample_id"], list(dark_pool)).mean()
    assert share >= 0.8 > 3 * max(base, random_share)
    # Each pick names the query row it is near (or the query rows' mean, which counts as some of
    # them), at the distance the reason gives.
    emb = {i: e / np.linalg.norm(e) for i, e in zip(s.pool.ids, s.pool.embeddings)}
    emb.update({i: e / np.linalg.norm(e) for i, e in zip(s.test.ids, s.test.embeddings)})
    q = np.stack([emb[i] for i in query])
    mean = q.mean(axis=0) / np.linalg.norm(q.mean(axis=0))
    assert (picks["region_id"] == -1).all() and (picks["slice"] == "").all()
    by_row = picks[picks["nearest_failure_id"] != ""]
    by_mean = picks[picks["nearest_failure_id"] == ""]
    assert set(by_row["nearest_failure_id"]) <= set(query) and len(by_row) >= 60
    assert by_row["reason"].str.startswith("like the 15 query rows; nearest query row ").all()
    assert by_mean["reason"].str.startswith("like the 15 query rows; nearest the query rows' mean at ").all()
    for _, pick in by_row.head(20).iterrows():
        assert float(1 - emb[pick["sample_id"]] @ emb[pick["nearest_failure_id"]]) == pytest.approx(
            pick["distance"], abs=1e-4)
    for _, pick in by_mean.head(20).iterrows():
        assert float(1 - emb[pick["sample_id"]] @ mean) == pytest.approx(pick["distance"], abs=1e-4)
    # The nearest pick of all is the one closest to a query row or the mean: no other pool row is
    # nearer to any of them (the search is exact at this pool size).
    p = np.stack([emb[i] for i in s.pool.ids])
    assert picks["distance"].min() == pytest.approx(float((1 - np.vstack([q, mean]) @ p.T).min()), abs=1e-4)
    # Stored as a set like any round, so a later round leaves these picks out.
    sets = run.suggestion_sets()
    assert sets["strategy"].tolist() == ["similar", "random"]
    again = run.suggest(pool, budget=50, query_ids=query, progress=False)
    assert not set(again["sample_id"]) & set(picks["sample_id"])
    assert again.attrs["exclusions"]["earlier_picks"] == 240


def test_query_rows_are_checked_and_named(client, small_scenario):
    s = small_scenario.scenario
    run, pool, _ = _log_scenario(client, small_scenario)

    def code_and_message(**kwargs):
        request = pb.SuggestRequest(run_id=run.id, pool_id=pool.id, budget=10, **kwargs)
        with pytest.raises(grpc.RpcError) as err:
            list(client.stub.Suggest(request, timeout=60))
        return err.value.code(), err.value.details()

    code, msg = code_and_message(strategy="similar", query_ids=[s.test.ids[0], "nope-1", "nope-2"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg.startswith("query_ids:") and "2 of 3" in msg and "'nope-1'" in msg and run.id in msg
    # A pool sample is not a row of the run.
    code, msg = code_and_message(strategy="similar", query_ids=[s.pool.ids[0]])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and repr(str(s.pool.ids[0])) in msg
    code, msg = code_and_message(strategy="similar")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("query_ids:")
    code, msg = code_and_message(strategy="margin", query_ids=[s.test.ids[0]])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("query_ids:") and "'margin'" in msg
    code, msg = code_and_message(strategy="margin", region_ids=[0])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("region_ids:")
    # Nothing was stored by the refused calls.
    assert len(run.suggestion_sets()) == 0
    # Duplicate ids count once.
    picks = run.suggest(pool, budget=5, query_ids=[s.test.ids[0]] * 3, progress=False)
    assert len(picks) == 5 and picks["reason"].str.startswith("like the 1 query rows").all()


def test_targeted_aimed_at_chosen_regions_spends_the_whole_budget_there(client, small_scenario):
    run, pool, _ = _log_scenario(client, small_scenario)
    diagnosis = run.diagnose(progress=False)
    regions = diagnosis.to_frame()
    gaps = regions.loc[regions["kind"] == "data_gap", "region"].tolist()
    assert len(gaps) >= 3
    whole = run.suggest(pool, budget=200, allow_repeats=True, progress=False)
    assert set(gaps) <= set(whole["region_id"])
    chosen = gaps[1:3]
    picks = run.suggest(pool, budget=200, region_ids=chosen, allow_repeats=True, progress=False)
    assert len(picks) == 200 and set(picks["region_id"]) == set(chosen)
    for r in chosen:
        mine = picks.loc[picks["region_id"] == r, "sample_id"].tolist()
        theirs = whole.loc[whole["region_id"] == r, "sample_id"].tolist()
        # More picks for each chosen region, mostly the ones a whole round makes near it: the choice
        # moves budget, not what "near the region" means.
        assert len(mine) > len(theirs) and len(set(mine) & set(theirs)) >= 0.75 * len(theirs)
    with pytest.raises(BlindspotsError, match=r"region_ids: 99 not among the regions of diagnosis"):
        run.suggest(pool, budget=10, region_ids=[99], progress=False)


def test_cli_more_like_a_file_of_sample_ids(server, client, small_scenario, tmp_path):
    run, pool, _ = _log_scenario(client, small_scenario)
    query = _dark_failures(small_scenario, 8)
    pd.DataFrame({"sample_id": query, "note": "dark"}).to_csv(tmp_path / "found.csv", index=False)
    (tmp_path / "found.txt").write_text("\n".join(query[:3]) + "\n\n")
    address = f"127.0.0.1:{server.port}"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "blindspots.cli", *args, "--address", address],
                              capture_output=True, text=True, timeout=120)

    out = cli("suggest", run.id, "--pool", pool.id, "--budget", "30", "-o", str(tmp_path / "p.csv"),
              "--like-file", str(tmp_path / "found.csv"), "--like", query[0])
    assert out.returncode == 0, out.stderr
    picks = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert len(picks) == 30 and set(picks["nearest_failure_id"]) <= set(query) | {""}
    assert picks["reason"].str.startswith("like the 8 query rows").all()
    out = cli("suggest", run.id, "--pool", pool.id, "--budget", "5", "-o", str(tmp_path / "q.csv"),
              "--like-file", str(tmp_path / "found.txt"))
    assert out.returncode == 0, out.stderr
    assert pd.read_csv(tmp_path / "q.csv")["reason"].str.startswith("like the 3 query rows").all()
    (tmp_path / "bad.csv").write_text("id\nx\n")
    for bad, says in (("bad.csv", "no sample_id column"), ("missing.txt", "No such file")):
        out = cli("suggest", run.id, "--pool", pool.id, "--budget", "5", "-o", str(tmp_path / "r.csv"),
                  "--like-file", str(tmp_path / bad))
        assert out.returncode == 2 and says in out.stderr and not (tmp_path / "r.csv").exists()
    out = cli("suggest", run.id, "--pool", pool.id, "--budget", "5", "-o", str(tmp_path / "r.csv"),
              "--filter", "price~3")
    assert out.returncode == 2 and "--filter 'price~3'" in out.stderr and not (tmp_path / "r.csv").exists()
    out = cli("suggest", run.id, "--pool", pool.id, "--budget", "5", "-o", str(tmp_path / "r.csv"),
              "--like", "not-a-row")
    assert out.returncode == 1 and "query_ids: 1 of 1 are not sample ids" in out.stderr
