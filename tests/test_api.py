"""The walking path through the SDK against a real server on loopback."""
from __future__ import annotations

import time

import grpc
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from blindspots import Client, FailedPreconditionError, InvalidArgumentError, NotFoundError
from blindspots.v1 import blindspots_pb2 as pb

from conftest import start_server


def _log_scenario(client: Client, sm, *, pool_probs: bool = True):
    s = sm.scenario
    run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1],
                            model_name="mlp", model_version="v1", project="listings")
    summary = run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                                  metadata=s.test.metadata, uris=s.test.uris, batch_size=1000)
    pool = client.create_pool("unlabeled", embedding_dim=s.pool.embeddings.shape[1],
                              num_classes=len(s.class_names) if pool_probs else 0, project="listings")
    pool.add(s.pool.ids, s.pool.embeddings, probabilities=sm.pool_probs if pool_probs else None,
             metadata=s.pool.metadata, uris=s.pool.uris, batch_size=2000)
    return run, pool, summary


def test_full_path_through_the_sdk(client, small_scenario, tmp_path):
    s = small_scenario.scenario
    run, pool, summary = _log_scenario(client, small_scenario)
    assert summary.rows_stored == len(s.test) and summary.total_rows == len(s.test)
    assert summary.batches == 3 and summary.duplicate_batches == 0
    fetched = client.get_run(run.id).message
    assert fetched.num_rows == len(s.test) and list(fetched.class_names) == s.class_names
    schema = {c.name: c.type for c in fetched.metadata_schema}
    assert schema == {"region": pb.COLUMN_TYPE_STRING, "camera": pb.COLUMN_TYPE_STRING,
                      "price": pb.COLUMN_TYPE_NUMBER, "listed_at": pb.COLUMN_TYPE_TIMESTAMP}
    assert [r.id for r in client.list_runs("listings")] == [run.id]
    assert client.get_pool(pool.id).message.num_rows == len(s.pool)

    # Diagnose as a job whose progress the client can follow.
    job = run.diagnose(wait=False)
    states = [j.state for j in client.stub.WatchJob(pb.GetJobRequest(job_id=job.id), timeout=120)]
    assert states[-1] == pb.Job.SUCCEEDED
    done = client.stub.GetJob(pb.GetJobRequest(job_id=job.id))
    assert done.fraction_done == 1.0 and done.result_id
    diagnosis = client.get_diagnosis(done.result_id)
    d = diagnosis.message
    failed = sm_failed(small_scenario)
    assert d.num_samples == len(s.test) and d.num_failures == failed.sum()
    assert d.baseline_error_rate == pytest.approx(failed.mean())
    assert d.baseline_ci.low < d.baseline_error_rate < d.baseline_ci.high
    assert len(d.regions) >= 1
    top = d.regions[0]
    assert top.error_rate > d.baseline_error_rate and top.excess_errors > 0
    assert top.error_rate_ci.low <= top.error_rate <= top.error_rate_ci.high
    assert top.typical_failures and top.typical_failures[0].uri.startswith("synthetic://")
    # The label test's two numbers travel where they were measured (three or more classes).
    measured = [r.evidence for r in d.regions if r.evidence.HasField("failure_label_agreement")]
    assert measured and all(0 <= e.failure_label_agreement <= 1 and 0 <= e.failure_label_chance <= 1
                            and e.HasField("failure_label_chance") for e in measured)
    frame = diagnosis.to_frame()
    assert list(frame["region"]) == [r.id for r in d.regions]
    assert frame["failure_label_agreement"].notna().sum() == len(measured)
    # The two-class pair is absent with three or more classes.
    assert not any(r.evidence.HasField("failure_neighbour_failures") for r in d.regions)
    assert frame["failure_neighbour_failures"].isna().all()
    assert "region" in diagnosis.summary()
    assert run.latest_diagnosis().id == diagnosis.id

    # Suggest: ranked, within budget, never a test-set id, written as Parquet and CSV.
    out = tmp_path / "picks.parquet"
    picks = run.suggest(pool, budget=200, output=str(out))
    assert len(picks) == 200
    assert list(picks["rank"]) == list(range(1, 201))
    assert picks["sample_id"].is_unique
    assert not set(picks["sample_id"]) & set(s.test.ids)
    assert (picks["reason"].str.len() > 0).all()
    assert np.isfinite(picks["score"]).all()
    assert pd.read_parquet(out)["sample_id"].tolist() == picks["sample_id"].tolist()
    csv = tmp_path / "picks.csv"
    again = run.suggest(pool, budget=50, strategy="entropy", output=str(csv))
    assert not set(again["sample_id"]) & set(picks["sample_id"]), "earlier rounds are excluded"
    assert pd.read_csv(csv)["sample_id"].tolist() == again["sample_id"].tolist()
    # A diagnosis alone names its run.
    by_diagnosis = client.suggest("", pool.id, budget=10, diagnosis_id=diagnosis.id)
    assert len(by_diagnosis) == 10 and not set(by_diagnosis["sample_id"]) & set(picks["sample_id"])
    filtered = run.suggest(pool, budget=30, strategy="random", filters=[("region", "==", "north")])
    regions = s.pool.metadata.set_index(pd.Index(s.pool.ids))["region"]
    assert set(regions[filtered["sample_id"]]) == {"north"}


def sm_failed(sm) -> np.ndarray:
    return sm.test_probs.argmax(1) != sm.scenario.test.labels


def test_restart_keeps_everything_acknowledged(tmp_path, small_scenario):
    data = tmp_path / "data"
    srv = start_server(data)
    client = Client(f"127.0.0.1:{srv.port}", retries=1)
    run, pool, _ = _log_scenario(client, small_scenario)
    diagnosis = run.diagnose()
    first = run.suggest(pool, budget=40, strategy="random", seed=3)
    # The index builds in the background after pool.add ("random" does not wait for it); a stop
    # before it is saved would leave the restarted server none to reload.
    deadline = time.time() + 60
    while client.get_pool(pool.id).message.index.num_indexed < len(small_scenario.scenario.pool):
        assert time.time() < deadline, "the pool index was not built within 60 s"
        time.sleep(0.05)
    client.close()
    srv.stop()

    srv = start_server(data)
    try:
        client = Client(f"127.0.0.1:{srv.port}", retries=1)
        assert client.get_run(run.id).message.num_rows == len(small_scenario.scenario.test)
        assert client.get_pool(pool.id).message.num_rows == len(small_scenario.scenario.pool)
        assert client.get_diagnosis(run_id=run.id).message == diagnosis.message
        second = client.suggest(run.id, pool.id, budget=40, strategy="random", seed=3)
        assert not set(first["sample_id"]) & set(second["sample_id"]), "suggestion history survives restart"
        # The pool index was persisted and is reloaded, not rebuilt from nothing.
        assert client.get_pool(pool.id).message.index.num_indexed == len(small_scenario.scenario.pool)
        client.close()
    finally:
        srv.stop()


def test_retried_batch_is_stored_once(client, small_scenario):
    s = small_scenario.scenario
    run = client.create_run("retry", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
    n = 100
    args = dict(labels=s.test.labels[:n], probabilities=small_scenario.test_probs[:n],
                metadata=s.test.metadata.iloc[:n], batch_size=50)
    first = run.log_predictions(s.test.ids[:n], s.test.embeddings[:n], **args)
    second = run.log_predictions(s.test.ids[:n], s.test.embeddings[:n], **args)
    assert (first.rows_stored, first.total_rows) == (n, n)
    assert (second.rows_stored, second.duplicate_batches, second.total_rows) == (0, 2, n)

    # The same batch id twice in one raw stream: acknowledged twice, stored once.
    batch = pb.IngestBatch(run_id=run.id, batch_id="b-1", sample_ids=["x1", "x2"], labels=[0, 1],
                           probabilities=np.full((2, 5), 0.2, "<f4").tobytes(),
                           embeddings=np.ones((2, 128), "<f4").tobytes())
    resp = client.stub.IngestPredictions(iter([batch, batch]))
    assert (resp.batches_received, resp.batches_duplicate, resp.rows_stored, resp.total_rows) == (2, 1, 2, n + 2)


def _rpc_error(fn):
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value


def test_bad_input_gets_a_clear_status_and_nothing_is_stored(client):
    run = client.create_run("bad", class_names=["a", "b"], embedding_dim=8)
    good = dict(run_id=run.id, batch_id="b", sample_ids=["s1", "s2"], labels=[0, 1],
                probabilities=np.array([[0.5, 0.5], [0.1, 0.9]], "<f4").tobytes(),
                embeddings=np.zeros((2, 8), "<f4").tobytes())

    wrong_dim = pb.IngestBatch(**{**good, "embeddings": np.zeros((2, 16), "<f4").tobytes()})
    err = _rpc_error(lambda: client.stub.IngestPredictions(iter([wrong_dim])))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "embeddings" in err.details() and "embedding_dim 8" in err.details()

    unknown = pb.IngestBatch(**{**good, "run_id": "run_does_not_exist"})
    err = _rpc_error(lambda: client.stub.IngestPredictions(iter([unknown])))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "run_does_not_exist" in err.details()

    err = _rpc_error(lambda: client.stub.GetRun(pb.GetRunRequest(run_id="nope")))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "run 'nope'" in err.details()

    err = _rpc_error(lambda: client.stub.GetRun(pb.GetRunRequest()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "run_id" in err.details()

    bad_label = pb.IngestBatch(**{**good, "labels": [0, 7]})
    err = _rpc_error(lambda: client.stub.IngestPredictions(iter([bad_label])))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "labels" in err.details()

    bad_probs = pb.IngestBatch(**{**good, "probabilities": np.array([[0.5, 0.9], [0.1, 0.9]], "<f4").tobytes()})
    err = _rpc_error(lambda: client.stub.IngestPredictions(iter([bad_probs])))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "probabilities" in err.details()

    with pytest.raises(InvalidArgumentError, match="embedding_dim"):
        client.create_run("x", class_names=["a", "b"], embedding_dim=0)
    with pytest.raises(NotFoundError, match="pool"):
        client.get_pool("pool_missing")
    with pytest.raises(FailedPreconditionError, match="no diagnosis"):
        pool = client.create_pool("p", embedding_dim=8)
        pool.add(["p1"], np.zeros((1, 8), "<f4"))
        run.log_predictions(["s0"], np.zeros((1, 8)), labels=[0], probabilities=[[0.9, 0.1]])   # ids are unique per run
        run.suggest(pool, budget=1)

    # Only the one good row above was stored; the server is still up.
    assert client.get_run(run.id).message.num_rows == 1
    ok = client.stub.IngestPredictions(iter([pb.IngestBatch(**good)]))
    assert ok.rows_stored == 2 and ok.total_rows == 3


def test_health_and_reflection_are_registered(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "blindspots.v1.Blindspots"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"blindspots.v1.Blindspots", "grpc.health.v1.Health"} <= names
    channel.close()


def test_targeted_without_failure_regions_falls_back_and_says_so(client):
    rng = np.random.default_rng(0)
    n, dim = 600, 16
    run = client.create_run("no-regions", class_names=["a", "b"], embedding_dim=dim)
    probs = rng.dirichlet([1, 1], n)
    # Errors spread uniformly: labels independent of everything, so no region stands out.
    run.log_predictions([f"t{i}" for i in range(n)], rng.normal(size=(n, dim)), labels=rng.integers(0, 2, n),
                        probabilities=probs)
    diagnosis = run.diagnose()
    assert len(diagnosis.regions) == 0
    pool = client.create_pool("p", embedding_dim=dim, num_classes=2)
    pool.add([f"p{i}" for i in range(300)], rng.normal(size=(300, dim)), probabilities=rng.dirichlet([1, 1], 300))
    picks = run.suggest(pool, budget=20)
    assert len(picks) == 20
    assert picks["reason"].str.contains("found no failure region to target; picked by margin").all()
    assert (picks["region_id"] == -1).all()
