"""Deleting runs and pools through a real server: what goes, what stays, what refuses."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from blindspots import Client, FailedPreconditionError, JobFailedError, NotFoundError
from blindspots.v1 import blindspots_pb2 as pb

from conftest import free_port, metric_sample, metrics_text, start_server

BIN = Path(sys.executable).parent / "blindspots"


def _files_of(data_dir: Path, object_id: str) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file() and object_id in str(p)]


def _log(client: Client, sm, name: str, version: str):
    s = sm.scenario
    run = client.create_run(name, class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1],
                            model_name="mlp", model_version=version, project="listings")
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                        metadata=s.test.metadata, batch_size=1000)
    return run


def test_deleting_a_pool_then_a_run_removes_them_their_files_and_their_series(tmp_path, small_scenario):
    sm, s = small_scenario, small_scenario.scenario
    data = tmp_path / "data"
    server = start_server(data, metrics_port=free_port())
    client = Client(f"127.0.0.1:{server.port}", timeout=120)
    try:
        run = _log(client, sm, "eval", "v1")
        other = _log(client, sm, "eval", "v2")
        pool = client.create_pool("unlabeled", embedding_dim=128, num_classes=len(s.class_names), project="listings")
        pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata)
        run.diagnose(progress=False)
        other.diagnose(progress=False)
        picks = run.suggest(pool, budget=40)
        client.import_labels(pd.DataFrame({"sample_id": picks["sample_id"][:10], "label": s.class_names[0]}),
                             pool_id=pool.id)
        assert f'run_id="{run.id}"' in metrics_text(server) and f'pool_id="{pool.id}"' in metrics_text(server)
        assert _files_of(data, pool.id)

        with pytest.raises(FailedPreconditionError, match="10 label"):
            pool.delete()                                  # labels cost money: export them first
        assert len(client.labels_frame(pool_id=pool.id)) == 10
        size = client.get_pool(pool.id).message.stored_bytes
        assert [p.message.stored_bytes for p in client.list_pools()] == [size]
        gone = pool.delete(force=True)
        assert gone.bytes == size
        assert (gone.id, gone.rows, gone.suggestion_sets, gone.labels) == (pool.id, len(s.pool.ids), 1, 10)
        assert metric_sample(metrics_text(server), "blindspots_deleted_bytes_total", target="pool") == gone.bytes
        assert gone.files >= 2 and gone.bytes > 0
        assert client.list_jobs(kind="index_build").empty          # its finished index builds went with it
        with pytest.raises(NotFoundError, match=pool.id):
            client.get_pool(pool.id)
        with pytest.raises(NotFoundError):
            run.suggest(pool.id, budget=5)
        assert _files_of(data, pool.id) == [] and f'pool_id="{pool.id}"' not in metrics_text(server)
        assert len(run.latest_diagnosis().regions) > 0             # the run keeps its diagnosis

        size = run.refresh().message.stored_bytes
        gone = run.delete()
        assert gone.bytes == size > 0
        assert (gone.rows, gone.diagnoses, gone.suggestion_sets) == (len(s.test.ids), 1, 0)
        with pytest.raises(NotFoundError):
            client.get_run(run.id)
        with pytest.raises(NotFoundError):
            client.get_diagnosis(run_id=run.id)
        assert [r.id for r in client.list_runs()] == [other.id]
        assert _files_of(data, run.id) == []
        exposed = metrics_text(server)
        assert f'run_id="{run.id}"' not in exposed and f'run_id="{other.id}"' in exposed
        assert metric_sample(exposed, "blindspots_deleted_total", target="run") == 1
        with pytest.raises(NotFoundError):
            run.delete()
        assert run.delete(missing_ok=True) is None
    finally:
        client.close()
        server.stop()
    # A restart neither brings them back nor takes their files for debris.
    again = start_server(data)
    try:
        with Client(f"127.0.0.1:{again.port}", timeout=60) as c:
            assert [r.id for r in c.list_runs()] == [other.id] and c.list_pools() == []
            assert len(c.get_diagnosis(run_id=other.id).regions) > 0
        assert not (data / "quarantine").exists()
    finally:
        again.stop()


def test_a_run_with_a_job_in_flight_is_kept_until_the_job_ends(client, small_scenario):
    run = _log(client, small_scenario, "busy", "v1")
    job = run.diagnose(wait=False)
    with pytest.raises(FailedPreconditionError, match=job.id):
        run.delete()
    client.cancel_job(job.id)
    with pytest.raises(JobFailedError, match="CANCELLED"):
        client.wait_job(job.id, progress=False)
    assert run.delete().rows == len(small_scenario.scenario.test.ids)
    assert client.list_runs() == []


@pytest.mark.parametrize("shards", [1, 2])
def test_a_pool_deleted_while_its_index_builds_ends_the_build_cancelled_not_failed(tmp_path, shards):
    """Every ingest into a pool starts an index build; deleting the pool right after must not
    leave a failed job (an alert on failed jobs), an index in memory or its series; sharded too."""
    server = start_server(tmp_path / "data", metrics_port=free_port(), index_shards=shards)
    client = Client(f"127.0.0.1:{server.port}", timeout=120)
    try:
        pool = client.create_pool("p", embedding_dim=16)
        x = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
        # Held here, the pool's index lock keeps its build from finishing before the delete.
        with server.servicer.indexes._lock(pool.id):
            pool.add([f"s{i}" for i in range(len(x))], x)
            client.delete_pool(pool.id)

        def count(state: str) -> float:
            return metric_sample(metrics_text(server), "blindspots_job_duration_seconds_count",
                                 kind="index_build", state=state)
        deadline = time.monotonic() + 60
        while count("CANCELLED") < 1:
            assert time.monotonic() < deadline and count("SUCCEEDED") == 0, "the build did not end cancelled"
            time.sleep(0.1)
        assert count("FAILED") == 0 and server.servicer.indexes.loaded() == {}
        assert f'pool_id="{pool.id}"' not in metrics_text(server)
        # The build that was running stays listed, cancelled, naming the pool it was for.
        jobs = client.list_jobs(kind="index_build")
        assert jobs[["state", "pool_id"]].values.tolist() == [["CANCELLED", pool.id]]
    finally:
        client.close()
        server.stop()


def test_bad_ids_get_a_status_naming_the_field(client):
    for method, request, field in ((client.stub.DeleteRun, pb.DeleteRunRequest(), "run_id"),
                                   (client.stub.DeletePool, pb.DeletePoolRequest(), "pool_id")):
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            method(type(request)(**{field: "nope"}), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in err.value.details()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BLINDSPOTS_ADDRESS": ""})


def test_prune_keeps_the_newest_runs_of_each_model(server, client, small_scenario):
    address = f"127.0.0.1:{server.port}"
    runs = [_log(client, small_scenario, "eval", f"v{i}") for i in range(4)]
    solo = client.create_run("other-model", class_names=["a", "b"], embedding_dim=4, model_name="cnn",
                             project="listings")
    dry = _cli("prune", "--keep", "2", "--dry-run", "--address", address)
    assert dry.returncode == 0, dry.stderr
    assert "2 run(s) would be deleted, freeing" in dry.stdout
    assert len(client.list_runs()) == 5
    done = _cli("prune", "--keep", "2", "--address", address)
    assert done.returncode == 0 and "2 run(s) deleted" in done.stdout, done.stdout + done.stderr
    left = {r.id for r in client.list_runs()}
    assert left == {runs[2].id, runs[3].id, solo.id}           # the newest two of "mlp"; "cnn"'s only run
    assert _cli("prune", "--keep", "2", "--address", address).stdout.strip() == "nothing to prune"
    deleted = _cli("delete", "run", runs[2].id, "--address", address)
    assert deleted.returncode == 0 and f"deleted run {runs[2].id}: {len(small_scenario.scenario.test.ids)} rows" \
        in deleted.stdout
    missing = _cli("delete", "run", runs[2].id, "--address", address)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    ok = _cli("delete", "run", runs[2].id, "--missing-ok", "--address", address)
    assert ok.returncode == 0 and "not there" in ok.stdout


@pytest.mark.parametrize("target", ["pool", "run"])
def test_a_suggest_in_flight_when_its_pool_or_run_is_deleted_ends_ok_or_not_found(tmp_path, small_scenario, target):
    """Suggest reads the run's and pool's rows and writes a suggestion set; deleting either
    meanwhile must end the call OK (it finished first) or NOT_FOUND (never DATA_LOSS or
    INTERNAL), leave no file of it, and leave the server serving."""
    import threading
    import time
    sm, s = small_scenario, small_scenario.scenario
    data = tmp_path / "data"
    server = start_server(data)
    client = Client(f"127.0.0.1:{server.port}", timeout=120, retries=0)
    outcomes = []
    try:
        for delay in (0.0, 0.05, 0.2, 0.5):
            run = _log(client, sm, "eval", "v1")
            pool = client.create_pool("unlabeled", embedding_dim=128, num_classes=len(s.class_names),
                                      project="listings")
            pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata)
            run.diagnose(progress=False)
            result: list = []

            def suggest() -> None:
                try:
                    result.append(len(run.suggest(pool, budget=300, progress=False)))
                except Exception as exc:       # the status is checked below
                    result.append(exc)

            t = threading.Thread(target=suggest)
            t.start()
            time.sleep(delay)
            (pool if target == "pool" else run).delete()
            t.join(120)
            assert len(result) == 1
            if isinstance(result[0], int):
                outcomes.append("ok")
                assert result[0] == 300
            else:
                assert isinstance(result[0], NotFoundError), repr(result[0])
                outcomes.append("not found")
            gone = pool.id if target == "pool" else run.id
            assert _files_of(data, gone) == []
            (run if target == "pool" else pool).delete()
        assert [r.id for r in client.list_runs()] == [] and client.list_pools() == []
        assert not [p for p in data.rglob("*.parquet")], "a suggestion set or row file was left"
    finally:
        client.close()
        server.stop()
    print(target, outcomes)


@pytest.mark.parametrize("shards", [1, 2])
def test_a_pool_deleted_while_a_suggest_waits_for_its_index_is_not_found(tmp_path, small_scenario, shards):
    """A Suggest that reaches the pool's index after the pool was deleted (the index is built from
    the pool's row files, in this process or in shards) ends NOT_FOUND naming the pool, never
    DATA_LOSS or INTERNAL; no set is stored and the server serves on. The pool's index lock, held
    here, stops the Suggest (and the ingest's index build) at the index until the pool is gone."""
    import grpc

    from blindspots.v1 import blindspots_pb2 as pb
    sm, s = small_scenario, small_scenario.scenario
    server = start_server(tmp_path / "data", index_shards=shards)
    client = Client(f"127.0.0.1:{server.port}", timeout=120, retries=0)
    try:
        run = _log(client, sm, "eval", "v1")
        run.diagnose(progress=False)
        pool = client.create_pool("unlabeled", embedding_dim=128, num_classes=len(s.class_names), project="listings")
        with server.servicer.indexes._lock(pool.id):
            pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs, metadata=s.pool.metadata)
            stream = client.stub.Suggest(pb.SuggestRequest(run_id=run.id, pool_id=pool.id, budget=100), timeout=120)
            for message in stream:                  # until the call waits for the index
                if message.WhichOneof("payload") == "progress" and "pool index" in message.progress.stage:
                    break
            client.delete_pool(pool.id)
        with pytest.raises(grpc.RpcError) as info:
            for _ in stream:
                pass
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()
        assert pool.id in info.value.details(), info.value.details()
        assert client.list_suggestion_sets(run).empty and client.list_pools() == []
        assert client.get_run(run.id).message.num_rows == len(s.test.ids)          # the server serves on
    finally:
        client.close()
        server.stop()
