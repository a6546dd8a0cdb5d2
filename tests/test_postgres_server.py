"""A real server on the PostgreSQL store: the SDK's walking path, and the same answers as the embedded store."""
from __future__ import annotations

import time

import numpy as np
import pytest

from blindspots import Client

from conftest import free_port, metric_sample, metrics_text, start_server


def _walk(client: Client, sm) -> tuple:
    s = sm.scenario
    run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1],
                            project="listings")
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                        metadata=s.test.metadata, uris=s.test.uris, batch_size=1000)
    pool = client.create_pool("unlabeled", embedding_dim=s.pool.embeddings.shape[1],
                              num_classes=len(s.class_names), project="listings")
    pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata,
             uris=s.pool.uris, batch_size=2000)
    diagnosis = run.diagnose(progress=False, seed=7).message
    picks = run.suggest(pool, budget=100)
    again = run.suggest(pool, budget=50, strategy="entropy")
    return run, pool, diagnosis, picks, again


def test_walking_path_on_postgres_matches_the_embedded_store(small_scenario, postgres_uri, tmp_path):
    answers = {}
    for backend, overrides in (("embedded", {}),
                               ("postgres", {"store": postgres_uri, "files": str(tmp_path / "files")})):
        server = start_server(tmp_path / f"data-{backend}", **overrides)
        client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
        try:
            run, pool, diagnosis, picks, again = _walk(client, small_scenario)
            assert client.get_run(run.id).message.num_rows == len(small_scenario.scenario.test)
            assert client.get_pool(pool.id).message.num_rows == len(small_scenario.scenario.pool)
            assert [r.id for r in client.list_runs("listings")] == [run.id]
            assert run.latest_diagnosis().id == diagnosis.id
            assert not set(again["sample_id"]) & set(picks["sample_id"]), "earlier rounds are excluded"
            answers[backend] = (diagnosis, picks, again)
        finally:
            client.close()
            server.stop()
    # The PostgreSQL server kept its rows in the file root, nothing in a data directory.
    assert not (tmp_path / "data-postgres").exists() and list((tmp_path / "files" / "runs").rglob("*.parquet"))
    (d_e, p_e, a_e), (d_p, p_p, a_p) = answers["embedded"], answers["postgres"]
    assert d_p.num_samples == d_e.num_samples and d_p.num_failures == d_e.num_failures
    assert [(r.support, r.failures) for r in d_p.regions] == [(r.support, r.failures) for r in d_e.regions]
    assert [s.name for s in d_p.slices] == [s.name for s in d_e.slices]
    assert p_p["sample_id"].tolist() == p_e["sample_id"].tolist()
    np.testing.assert_allclose(p_p["score"], p_e["score"])
    assert a_p["sample_id"].tolist() == a_e["sample_id"].tolist()


def _exported(server, metric: str, label: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families
    return {s.labels[label] for family in text_string_to_metric_families(metrics_text(server))
            for s in family.samples if s.name == metric}


def _eventually(check, timeout_s: float = 60.0) -> None:
    """Wait for another replica's sync (every second here) to make ``check()`` true."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the other replica never caught up"
        time.sleep(0.2)


def test_a_run_and_pool_deleted_through_one_replica_are_gone_for_the_other(small_scenario, postgres_uri, tmp_path):
    from blindspots import NotFoundError
    import pytest
    files = tmp_path / "files"
    a, b = (start_server(tmp_path / name, store=postgres_uri, files=str(files), metrics_port=free_port(),
                         replica_sync_s=1) for name in "ab")
    ca, cb = (Client(f"127.0.0.1:{s.port}", retries=2, timeout=120) for s in (a, b))
    try:
        run, pool, _, picks, _ = _walk(ca, small_scenario)
        assert len(cb.get_run(run.id).suggest(pool.id, budget=30)) == 30     # B loads the pool's index too
        assert pool.id in b.servicer.indexes.loaded()
        # Both replicas export the run's diagnosis and the pool's index size, whichever made them.
        for server in (a, b):
            _eventually(lambda: run.id in _exported(server, "blindspots_run_error_rate", "run_id")
                        and pool.id in _exported(server, "blindspots_pool_index_rows", "pool_id"))
        gone = ca.delete_pool(pool.id)
        assert (gone.rows, gone.suggestion_sets) == (len(small_scenario.scenario.pool), 3)
        with pytest.raises(NotFoundError):
            cb.get_run(run.id).suggest(pool.id, budget=5)
        # B lets go of the deleted pool's index and its series without a restart.
        _eventually(lambda: pool.id not in b.servicer.indexes.loaded()
                    and pool.id not in _exported(b, "blindspots_pool_index_rows", "pool_id"))
        gone = cb.delete_run(run.id)                                      # through the other replica
        assert (gone.rows, gone.diagnoses) == (len(small_scenario.scenario.test), 1)
        _eventually(lambda: not _exported(a, "blindspots_run_error_rate", "run_id")
                    and not _exported(a, "blindspots_slice_error_rate", "run_id"))
        for c in (ca, cb):
            assert c.list_runs() == [] and c.list_pools() == []
        assert [p for p in files.rglob("*") if p.is_file() and "tmp" not in p.parts] == []
        # The one diagnosis started once, on whichever replica claimed it; both report the same,
        # empty, queue of the shared catalog.
        texts = [metrics_text(server) for server in (a, b)]
        assert sum(metric_sample(t, "blindspots_job_queue_seconds_count", kind="diagnose") for t in texts) == 1
        assert all(metric_sample(t, "blindspots_jobs", state=state) == 0 for t in texts
                   for state in ("PENDING", "RUNNING"))
    finally:
        for c in (ca, cb):
            c.close()
        a.stop()
        b.stop()


@pytest.mark.parametrize("target", ["run", "pool"])
def test_replicas_sweeping_retention_together_delete_each_stale_run_or_pool_once(postgres_uri, tmp_path, target):
    """run_retention_days / pool_retention_days with two replicas of one catalog: both sweep, side by
    side; every stale run (pool) goes once (one the other replica deleted first is passed over, no
    error), the newest run of the model (pool of the project) stays, and the replicas' counters add up
    to those deleted."""
    import threading
    from blindspots_server.storage import PoolRecord, RunRecord, open_store

    files = tmp_path / "files"
    store = open_store(postgres_uri, str(files))
    old = time.time() - 40 * 86400.0
    for i in range(40):
        if target == "run":
            store.create_run(RunRecord(id=f"run_{i:02d}", name=f"v{i}", project="p", model_name="m",
                                       model_version=str(i), dataset_name="d", class_names=["a", "b"],
                                       embedding_dim=4, created_at=old + i))
        else:
            store.create_pool(PoolRecord(id=f"pool_{i:02d}", name=f"drop{i}", project="p", embedding_dim=4,
                                         num_classes=0, created_at=old + i))
    store.close()
    a, b = (start_server(tmp_path / name, store=postgres_uri, files=str(files), metrics_port=free_port(),
                         replica_sync_s=1) for name in "ab")             # retention 0: no sweep yet
    try:
        for server in (a, b):
            setattr(server.config, f"{target}_retention_days", 30)
        ready = threading.Barrier(2)
        counts: dict[str, int] = {}

        def sweep(name, server):
            ready.wait()
            counts[name] = getattr(server, f"prune_{target}s")()

        threads = [threading.Thread(target=sweep, args=pair) for pair in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(counts.values()) == 39
        with Client(f"127.0.0.1:{a.port}", retries=0, timeout=60) as client:
            left = client.list_runs() if target == "run" else client.list_pools()
            assert [x.id for x in left] == [f"{target}_39"]
        texts = [metrics_text(server) for server in (a, b)]
        assert sum(metric_sample(t, f"blindspots_{target}s_pruned_total") for t in texts) == 39
        assert sum(metric_sample(t, "blindspots_deleted_total", target=target) for t in texts) == 39
    finally:
        a.stop()
        b.stop()
