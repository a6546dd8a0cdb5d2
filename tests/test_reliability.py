"""Ingest semantics under partial failure, SDK retries, cancellation; real servers on loopback."""
from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from blindspots import Client, InvalidArgumentError
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.config import ServerConfig
from blindspots_server.server.app import BlindspotsServer
from blindspots_server.server.servicer import ProgressThrottle

from conftest import free_port, start_server

DIM = 8


def _rows(n: int, start: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in range(start, start + n)]
    labels = rng.integers(0, 2, n)
    p = rng.uniform(0.05, 0.95, n)
    return ids, labels, np.stack([p, 1 - p], axis=1), rng.normal(size=(n, DIM))


def _batch(run_id, batch_id, ids, labels=None, dim=DIM):
    n = len(ids)
    return pb.IngestBatch(run_id=run_id, batch_id=batch_id, sample_ids=ids,
                          labels=[0] * n if labels is None else labels,
                          probabilities=np.full((n, 2), 0.5, "<f4").tobytes(),
                          embeddings=np.zeros((n, dim), "<f4").tobytes())


def test_a_bad_batch_mid_stream_keeps_the_batches_before_it(client):
    """Each batch is atomic: batches 1-2 of a stream whose batch 3 is invalid are stored,
    the error says so, and re-sending the whole stream (as the SDK does) stores the rest once."""
    run = client.create_run("partial", class_names=["a", "b"], embedding_dim=DIM)
    good = [_batch(run.id, f"b{i}", [f"s{i}a", f"s{i}b"]) for i in range(4)]
    bad = _batch(run.id, "b2", ["s2a", "s2b"], dim=DIM + 1)
    with pytest.raises(grpc.RpcError) as info:
        client.stub.IngestPredictions(iter([good[0], good[1], bad, good[3]]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details()
    assert details.startswith("embeddings") and "batch 3 of the stream" in details
    assert "the 2 batches before it (4 rows) were stored" in details
    assert client.get_run(run.id).message.num_rows == 4

    resp = client.stub.IngestPredictions(iter(good))
    assert (resp.batches_received, resp.batches_duplicate, resp.rows_stored, resp.total_rows) == (4, 2, 4, 8)


def test_relogging_rows_with_another_batch_size_stores_nothing_twice(client, server):
    """Idempotency holds per row, not per batch: the same rows re-sent under other batch ids
    (another batch_size) are skipped; a re-sent id with other content is a conflict."""
    run = client.create_run("dups", class_names=["a", "b"], embedding_dim=DIM)
    ids, labels, probs, emb = _rows(10)
    first = run.log_predictions(ids, emb, labels=labels, probabilities=probs, batch_size=4, progress=False)
    assert (first.rows_stored, first.total_rows) == (10, 10)
    again = run.log_predictions(ids, emb, labels=labels, probabilities=probs, batch_size=3, progress=False)
    assert (again.rows_stored, again.rows_already_stored, again.total_rows) == (0, 10, 10)
    more = run.log_predictions(ids + ["new1"], np.vstack([emb, np.zeros((1, DIM))]), labels=np.append(labels, 0),
                               probabilities=np.vstack([probs, [[0.5, 0.5]]]), batch_size=7, progress=False)
    assert (more.rows_stored, more.rows_already_stored, more.total_rows) == (1, 10, 11)
    # The same id with another label: nothing of that batch is stored, the error names the id.
    flipped = labels.copy()
    flipped[2] = 1 - flipped[2]
    with pytest.raises(InvalidArgumentError,
                       match=r"^INVALID_ARGUMENT: sample_ids: id 's2' is already stored with other content"):
        run.log_predictions(ids[:4] + ["new2"], np.vstack([emb[:4], np.zeros((1, DIM))]),
                            labels=np.append(flipped[:4], 0), probabilities=np.vstack([probs[:4], [[0.5, 0.5]]]),
                            batch_size=5, progress=False)
    assert client.get_run(run.id).message.num_rows == 11
    stored = server.store.read_rows("run", run.id, ["sample_id"]).column("sample_id").to_pylist()
    assert stored == ids + ["new1"]                        # "new2" of the rejected batch is not there
    # Ids are unique per run, not globally: another run takes the same ids.
    other = client.create_run("dups2", class_names=["a", "b"], embedding_dim=DIM)
    assert other.log_predictions(ids, emb, labels=labels, probabilities=probs, progress=False).rows_stored == 10


def test_validation_names_the_field(client):
    run = client.create_run("fields", class_names=["a", "b"], embedding_dim=DIM)
    pool = client.create_pool("p", embedding_dim=DIM, num_classes=2)
    cases = [
        (client.stub.IngestPredictions, _batch(run.id, "x", ["a", "a"]), "sample_ids"),
        (client.stub.IngestPredictions, _batch(run.id, "x", ["a" * 2000]), "sample_ids"),
        (client.stub.IngestPredictions, _batch(run.id, "", ["a"]), "batch_id"),
        (client.stub.IngestPredictions, _batch(run.id, "x", ["a", "b"], labels=[0]), "labels"),
        (client.stub.IngestPool, pb.IngestBatch(pool_id=pool.id, batch_id="x", sample_ids=["p"],
                                                embeddings=np.zeros((1, DIM), "<f4").tobytes()), "probabilities"),
    ]
    for method, msg, field in cases:
        with pytest.raises(grpc.RpcError) as info:
            method(iter([msg]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(field), info.value.details()
    # Metadata types must agree across batches: FAILED_PRECONDITION naming the column.
    first = _batch(run.id, "m1", ["m1"])
    first.metadata.append(pb.Column(name="city", numbers=pb.NumberValues(values=[1.0])))
    client.stub.IngestPredictions(iter([first]))
    second = _batch(run.id, "m2", ["m2"])
    second.metadata.append(pb.Column(name="city", strings=pb.StringValues(values=["x"])))
    with pytest.raises(grpc.RpcError) as info:
        client.stub.IngestPredictions(iter([second]))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "'city'" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        client.stub.Diagnose(pb.DiagnoseRequest(run_id=run.id, params=pb.DiagnosisParams(quantile_bins=10 ** 6)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "params.quantile_bins" in info.value.details()
    assert client.get_run(run.id).message.num_rows == 1


def _server_on(data_dir, port: int) -> BlindspotsServer:
    return BlindspotsServer(ServerConfig(data_dir=str(data_dir), host="127.0.0.1", port=port)).start()


def test_sdk_retries_until_the_server_is_up_and_after_a_restart(tmp_path):
    port = free_port()
    holder = {}

    def start_later():
        time.sleep(1.0)
        holder["srv"] = _server_on(tmp_path / "data", port)

    starter = threading.Thread(target=start_later)
    starter.start()
    client = Client(f"127.0.0.1:{port}", retries=10, timeout=60)
    try:
        run = client.create_run("early", class_names=["a", "b"], embedding_dim=DIM)   # sent before the server runs
        ids, labels, probs, emb = _rows(300)
        first = run.log_predictions(ids[:200], emb[:200], labels=labels[:200], probabilities=probs[:200],
                                    batch_size=50, progress=False)
        assert first.rows_stored == 200
        starter.join()
        holder["srv"].stop()
        # Restart on the same store and port; the pipeline re-sends everything with the same batch ids.
        holder["srv"] = _server_on(tmp_path / "data", port)
        again = run.log_predictions(ids, emb, labels=labels, probabilities=probs, batch_size=50, progress=False)
        assert (again.rows_stored, again.duplicate_batches, again.total_rows) == (100, 4, 300)
    finally:
        starter.join()
        client.close()
        if "srv" in holder:
            holder["srv"].stop()


# ------------------------------------------------------------ cancellation

def _big_run(client, n=6000, seed=1):
    rng = np.random.default_rng(seed)
    run = client.create_run("big", class_names=["a", "b", "c"], embedding_dim=32)
    emb = rng.normal(size=(n, 32))
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n)
    run.log_predictions([f"r{i}" for i in range(n)], emb, labels=labels, probabilities=probs, progress=False)
    return run


def _big_pool(client, n: int, seed: int, batch_size: int = 4096):
    rng = np.random.default_rng(seed)
    pool = client.create_pool("pool", embedding_dim=32)
    pool.add([f"p{i}" for i in range(n)], rng.normal(size=(n, 32)), batch_size=batch_size, progress=False)
    return pool


def test_cancel_job_stops_running_and_queued_diagnoses(tmp_path):
    config = ServerConfig(data_dir=str(tmp_path / "data"), host="127.0.0.1", port=0, job_workers=1)
    srv = BlindspotsServer(config).start()
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run = _big_run(client)
        running = run.diagnose(wait=False)
        queued = run.diagnose(wait=False)              # one job worker: this one waits
        for job in client.stub.WatchJob(pb.GetJobRequest(job_id=running.id)):
            if job.state == pb.Job.RUNNING:
                break
        # The RPC threads stay free while a job runs.
        assert client.get_run(run.id).message.num_rows == 6000
        for job in (running, queued):
            client.stub.CancelJob(pb.GetJobRequest(job_id=job.id))
        for job in (running, queued):
            final = list(client.stub.WatchJob(pb.GetJobRequest(job_id=job.id)))[-1]
            assert final.state == pb.Job.CANCELLED, pb.Job.State.Name(final.state)
        assert client.stub.ListDiagnoses(pb.ListDiagnosesRequest(run_id=run.id)).diagnoses == []
    finally:
        client.close()
        srv.stop()


def test_cancelling_a_suggest_stream_stops_the_work(tmp_path):
    srv = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run = _big_run(client, n=500)
        pool = _big_pool(client, n=30000, seed=2)
        call = client.stub.Suggest(pb.SuggestRequest(run_id=run.id, pool_id=pool.id, budget=20000,
                                                     strategy="kcenter"))
        for resp in call:
            if resp.WhichOneof("payload") == "progress" and "k-center" in resp.progress.stage:
                call.cancel()
                break
        # The worker notices at its next progress step and ends without saving a suggestion set.
        deadline = time.monotonic() + 60
        while any(t.name == "suggest" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.name == "suggest" for t in threading.enumerate())
        assert srv.store.suggested_ids(run.id, pool.id) == set()
    finally:
        client.close()
        srv.stop()


def test_oversized_message_gets_resource_exhausted_and_nothing_is_stored(tmp_path):
    srv = start_server(tmp_path / "data", max_message_mb=1)
    try:
        client = Client(f"127.0.0.1:{srv.port}", retries=0)
        run = client.create_run("big", class_names=["a", "b"], embedding_dim=256)
        n = 1500                                   # 1500 x 256 float32 = 1.5 MB > the 1 MB limit
        batch = pb.IngestBatch(run_id=run.id, batch_id="big-1", sample_ids=[f"s{i}" for i in range(n)],
                               labels=[0] * n, probabilities=np.full((n, 2), 0.5, "<f4").tobytes(),
                               embeddings=np.zeros((n, 256), "<f4").tobytes())
        with pytest.raises(grpc.RpcError) as info:
            client.stub.IngestPredictions(iter([batch]))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert client.get_run(run.id).message.num_rows == 0
        # Smaller batches of the same rows go through: the SDK's batch_size is the remedy.
        summary = run.log_predictions([f"s{i}" for i in range(n)], np.zeros((n, 256)), labels=[0] * n,
                                      probabilities=np.full((n, 2), 0.5), batch_size=500)
        assert summary.rows_stored == n
        client.close()
    finally:
        srv.stop()


def test_progress_throttle_sends_each_step_and_thins_repeats_of_one_by_the_clock():
    """The first "batch file 1 of n" after the bare step is sent however fast files are read
    (CI once read 400 files within the window and the client saw none); repeats within the
    window are dropped; a stage without a colon is its own step."""
    now = [0.0]
    throttle = ProgressThrottle(every_s=0.25, clock=lambda: now[0])
    assert throttle.should_send("loading pool rows")
    sent = [throttle.should_send(f"loading pool rows: batch file {i} of 400") for i in range(1, 401)]
    assert sent[0] and not any(sent[1:])
    now[0] = 0.3
    assert throttle.should_send("loading pool rows: batch file 400 of 400")
    assert throttle.should_send("loading pool rows: joining 400 batch files")
    assert throttle.should_send("selecting pool samples near region 1")
    assert throttle.should_send("selecting pool samples near region 2")


def test_suggest_reports_row_loading_per_batch_file_without_a_message_per_file(tmp_path):
    """A pool of many batch files: Suggest says it is loading them (and checks for a cancel
    between files) in a few messages, not one per file."""
    srv = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run = _big_run(client, n=200)
        files = 400
        pool = _big_pool(client, n=files * 10, seed=3, batch_size=10)
        stages = [resp.progress.stage for resp in client.stub.Suggest(pb.SuggestRequest(
            run_id=run.id, pool_id=pool.id, budget=50, strategy="kcenter")) if resp.WhichOneof("payload") == "progress"]
        loading = [s for s in stages if s.startswith("loading pool rows: batch file")]
        assert loading and len(loading) < files // 2, stages[:20]
        assert any(s.startswith("loading run rows") for s in stages) and any("k-center" in s for s in stages)
    finally:
        client.close()
        srv.stop()
