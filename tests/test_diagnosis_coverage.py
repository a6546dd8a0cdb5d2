"""Targeted Suggest, GetRunMap and the report when the diagnosis and the data disagree:
rows logged after the diagnosis (issue 13, defect 6) and a pool without the run's slice
columns (defect 5). Real server on loopback, the synthetic listings scenario."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from blindspots.report import write_report
from blindspots_server.server.diagnosed_rows import align
from blindspots_server.storage import DataLoss


def _log_run(client, sm, rows: slice, run=None):
    s = sm.scenario
    run = run or client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
    run.log_predictions(s.test.ids[rows], labels=s.test.labels[rows], probabilities=sm.test_probs[rows],
                        embeddings=s.test.embeddings[rows], metadata=s.test.metadata.iloc[rows],
                        uris=s.test.uris[rows], progress=False)
    return run


def _pool(client, sm, metadata=True):
    s = sm.scenario
    pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1])
    pool.add(s.pool.ids, s.pool.embeddings, metadata=s.pool.metadata if metadata else None, uris=s.pool.uris,
             progress=False)
    return pool


def test_rows_logged_after_a_diagnosis_keep_map_suggest_and_report_working(client, small_scenario, tmp_path):
    s = small_scenario.scenario
    n, first = len(s.test), len(s.test) - 500
    run = _log_run(client, small_scenario, slice(0, first))
    diagnosis = run.diagnose(progress=False)
    assert diagnosis.message.regions and diagnosis.message.num_samples == first
    _log_run(client, small_scenario, slice(first, n), run=run)
    assert run.refresh().message.num_rows == n

    run_map = client.get_run_map(run.id, max_points=n)
    assert run_map.diagnosis_id == diagnosis.id and run_map.num_samples == n
    assert run_map.num_not_diagnosed == 500
    late = run_map.points[run_map.points["sample_id"].isin(set(s.test.ids[first:]))]
    assert len(late) == 500 and (late["region"] == -1).all()
    assert (late["failed"] == (late["label"] != late["predicted"])).all()
    early = run_map.points[~run_map.points["sample_id"].isin(set(s.test.ids[first:]))]
    assert (early["region"] >= 0).any()

    pool = _pool(client, small_scenario)
    picks = run.suggest(pool, budget=30, progress=False)
    assert len(picks) == 30 and (picks["region_id"] >= 0).any()
    assert picks["reason"].str.contains("500 row(s) added after diagnosis", regex=False).all()
    html = write_report(client, run.id, tmp_path / "report.html", picks).read_text()
    assert "500 of the rows were logged after this diagnosis" in html


def test_align_matches_by_id_and_falls_back_to_order_for_older_diagnoses():
    table = pa.table({"sample_id": ["b", "a"], "region": pa.array([1, 0], pa.int32()),
                      "failed": [True, False]})
    seen = align(table, np.array(["a", "b", "c"], dtype=object), "d1")
    assert seen.region.tolist() == [0, 1, -1] and seen.failed.tolist() == [False, True, False]
    assert seen.num_not_diagnosed == 1 and "1 row(s) added after diagnosis d1" in seen.note("d1")
    older = table.drop(["sample_id"])
    assert align(older, np.array(["x", "y", "z"], dtype=object), "d0").region.tolist() == [1, 0, -1]
    with pytest.raises(DataLoss):
        align(older, np.array(["x"], dtype=object), "d0")


def test_targeted_suggest_on_a_pool_without_the_slice_columns_works_without_slice_credit(client, small_scenario):
    """Defect 5: it failed with INVALID_ARGUMENT naming slice_predicates, not a request field."""
    s = small_scenario.scenario
    run = _log_run(client, small_scenario, slice(0, len(s.test)))
    diagnosis = run.diagnose(progress=False)
    sliced = [r for r in diagnosis.message.regions if r.explanations and r.explanations[0].predicates]
    assert sliced, "the scenario's data gap is explained by a metadata slice"
    columns = {p.column for r in sliced for p in r.explanations[0].predicates}

    bare = _pool(client, small_scenario, metadata=False)
    picks = run.suggest(bare, budget=40, progress=False)
    assert len(picks) == 40 and (picks["region_id"] >= 0).any()
    reasons = " ".join(picks["reason"])
    assert "targeted without its slice credit" in reasons
    assert any(f"unknown metadata column {c!r} (have no metadata columns)" in reasons for c in columns)

    full = _pool(client, small_scenario)          # the same pool with its metadata: no such note
    picks = run.suggest(full, budget=40, progress=False)
    assert len(picks) == 40 and not picks["reason"].str.contains("slice credit").any()
