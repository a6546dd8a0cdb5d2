"""Status codes at the API's edge (issue 13): client mistakes name their field, server
faults are never blamed on the caller, ids outside a caller's projects look missing.
Real servers on loopback over real data directories."""
from __future__ import annotations

import logging
import sqlite3

import grpc
import numpy as np
import pandas as pd
import pytest

from blindspots import Client
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.server.errors import client_message, status_for
from blindspots_server.server.validation import InvalidArgument

from conftest import start_server

DIM = 8


def _code_and_details(call, *args):
    with pytest.raises(grpc.RpcError) as info:
        call(*args)
    return info.value.code(), info.value.details()


def _run_with_rows(client, n=40, name="r", seed=0):
    rng = np.random.default_rng(seed)
    run = client.create_run(name, class_names=["a", "b"], embedding_dim=DIM)
    p = rng.uniform(0.05, 0.95, n)
    run.log_predictions([f"s{i}" for i in range(n)], labels=rng.integers(0, 2, n),
                        probabilities=np.stack([p, 1 - p], axis=1), embeddings=rng.normal(size=(n, DIM)),
                        progress=False)
    return run


@pytest.mark.parametrize("token", ["1e30", str(10 ** 30), str(1 << 63), "-1", "abc"])
def test_a_huge_or_foreign_page_token_is_invalid_argument(client, token):
    """Defect 9: a page token too large for the catalog's OFFSET was INTERNAL."""
    for call, request in ((client.stub.ListRuns, pb.ListRunsRequest(page_token=token)),
                          (client.stub.ListPools, pb.ListPoolsRequest(page_token=token))):
        code, details = _code_and_details(call, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_token"), details
    assert client.stub.ListRuns(pb.ListRunsRequest(page_token="5")).runs == []


@pytest.mark.parametrize("params, field", [
    (pb.DiagnosisParams(seed=-5), "params.seed"),
    (pb.DiagnosisParams(seed=1 << 40), "params.seed"),
    (pb.DiagnosisParams(min_cluster_size=1), "params.min_cluster_size"),
    (pb.DiagnosisParams(min_samples=-1), "params.min_samples"),
    (pb.DiagnosisParams(fdr_alpha=float("nan")), "params.fdr_alpha"),
    (pb.DiagnosisParams(failure_definition="worst"), "params.failure_definition"),
])
def test_diagnosis_params_are_checked_before_the_job_starts(client, params, field):
    """Defect 10: seed=-5 was accepted and the job failed later."""
    run = _run_with_rows(client)
    code, details = _code_and_details(client.stub.Diagnose, pb.DiagnoseRequest(run_id=run.id, params=params))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith(field), details
    assert client.stub.ListDiagnoses(pb.ListDiagnosesRequest(run_id=run.id)).diagnoses == []


def test_the_largest_valid_seed_diagnoses_and_maps(client):
    run = _run_with_rows(client)
    diagnosis = run.diagnose(seed=(1 << 32) - 1, progress=False)
    assert diagnosis.message.params.seed == (1 << 32) - 1
    client.get_run_map(run.id, seed=(1 << 32) - 1)
    pool = client.create_pool("p", embedding_dim=DIM)
    pool.add(["p0", "p1"], np.zeros((2, DIM)), progress=False)
    code, details = _code_and_details(client.stub.GetRunMap, pb.GetRunMapRequest(run_id=run.id, seed=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("seed"), details
    code, details = _code_and_details(lambda r: list(client.stub.Suggest(r)), pb.SuggestRequest(
        run_id=run.id, pool_id=pool.id, budget=1, strategy="random", seed=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("seed"), details


# ------------------------------------------------------------ server faults are not the caller's (defect 7)

def _restart(server, data_dir):
    server.stop()
    return start_server(data_dir)


def test_a_truncated_run_file_is_data_loss_without_server_paths(tmp_path):
    srv = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=60)
    try:
        run = _run_with_rows(client)
        part = next((tmp_path / "data" / "runs" / run.id).glob("*.parquet"))
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
        srv = _restart(srv, tmp_path / "data")     # a fresh process: nothing cached
        client.close()
        client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=60)
        code, details = _code_and_details(client.stub.GetRunMap, pb.GetRunMapRequest(run_id=run.id))
        assert code == grpc.StatusCode.DATA_LOSS and f"run '{run.id}'" in details, details
        assert str(tmp_path) not in details and ".parquet" not in details
        job = client.stub.Diagnose(pb.DiagnoseRequest(run_id=run.id))
        final = list(client.stub.WatchJob(pb.GetJobRequest(job_id=job.id)))[-1]
        assert final.state == pb.Job.FAILED and final.error.startswith("DATA_LOSS: "), final.error
        assert str(tmp_path) not in final.error
        assert client.get_run(run.id).message.num_rows == 40       # the server stays up
    finally:
        client.close()
        srv.stop()


def test_a_damaged_diagnosis_is_data_loss_and_a_damaged_index_is_rebuilt(tmp_path, small_scenario, caplog):
    s = small_scenario.scenario
    data = tmp_path / "data"
    srv = start_server(data)
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
        run.log_predictions(s.test.ids, labels=s.test.labels, probabilities=small_scenario.test_probs,
                            embeddings=s.test.embeddings, metadata=s.test.metadata, progress=False)
        pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1])
        pool.add(s.pool.ids, s.pool.embeddings, metadata=s.pool.metadata, progress=False)
        first = run.diagnose(progress=False)
        second = run.diagnose(progress=False)
        assert first.message.regions, "the scenario has failure regions to target"
        picks = run.suggest(pool, budget=20, diagnosis_id=first.id, allow_repeats=True, progress=False)
        assert len(picks) == 20
        # Damage the second diagnosis's per-row file and flip bytes inside the pool's index.
        diag_file = data / "diagnoses" / f"{second.id}.parquet"
        diag_file.write_bytes(diag_file.read_bytes()[:100])
        index_file = data / "pools" / pool.id / "index.faiss"
        blob = bytearray(index_file.read_bytes())
        blob[len(blob) // 2: len(blob) // 2 + 64] = bytes(64)
        index_file.write_bytes(bytes(blob))
        srv = _restart(srv, data)
        client.close()
        client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)

        code, details = _code_and_details(client.stub.GetRunMap,
                                          pb.GetRunMapRequest(run_id=run.id, diagnosis_id=second.id))
        assert code == grpc.StatusCode.DATA_LOSS and f"diagnosis '{second.id}'" in details, details
        assert client.get_run_map(run.id, diagnosis_id=first.id).num_samples == len(s.test)
        # The index is derived from the pool's rows: a damaged one is rebuilt from them (and
        # replaced), and the picks are those of the index before the damage.
        with caplog.at_level(logging.WARNING, logger="blindspots.server"):
            again = client.suggest(run.id, pool.id, 20, diagnosis_id=first.id, allow_repeats=True, progress=False)
        assert again.sample_id.tolist() == picks.sample_id.tolist()
        assert any("stored index cannot be used" in r.getMessage() for r in caplog.records)
        assert index_file.read_bytes() != bytes(blob)
        srv = _restart(srv, data)
        client.close()
        client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="blindspots.server"):
            assert client.suggest(run.id, pool.id, 20, diagnosis_id=first.id, allow_repeats=True,
                                  progress=False).sample_id.tolist() == picks.sample_id.tolist()
        assert not any("stored index" in r.getMessage() for r in caplog.records), "the rebuilt index is stored"
    finally:
        client.close()
        srv.stop()


def test_an_internal_failure_is_internal_not_the_callers_fault(tmp_path):
    """A catalog that contradicts its files makes pyarrow raise ArrowInvalid (a ValueError)
    deep inside the server: INTERNAL with a reference, never INVALID_ARGUMENT, no paths."""
    data = tmp_path / "data"
    srv = start_server(data)
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=60)
    try:
        run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
        with_city = pd.DataFrame({"city": np.arange(5, dtype=float)})
        run.log_predictions([f"a{i}" for i in range(5)], labels=[0] * 5, probabilities=np.full((5, 2), 0.5),
                            embeddings=np.zeros((5, DIM)), metadata=with_city, progress=False)
        run.log_predictions([f"b{i}" for i in range(5)], labels=[1] * 5, probabilities=np.full((5, 2), 0.5),
                            embeddings=np.ones((5, DIM)), progress=False)
        # Suggest reads every column of the pool's rows (of the run's, only ids and vectors).
        pool = client.create_pool("p", embedding_dim=DIM)
        pool.add(["p0", "p1"], np.zeros((2, DIM)), metadata=pd.DataFrame({"city": [1.0, 2.0]}), progress=False)
        pool.add(["p2", "p3"], np.ones((2, DIM)), progress=False)
        srv.stop()
        with sqlite3.connect(data / "catalog.sqlite") as db:
            db.execute("UPDATE runs SET metadata_schema=? WHERE id=?", ('{"city": "string"}', run.id))
            db.execute("UPDATE pools SET metadata_schema=? WHERE id=?", ('{"city": "string"}', pool.id))
        srv = start_server(data)
        client.close()
        client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=60)
        code, details = _code_and_details(lambda r: list(client.stub.Suggest(r)), pb.SuggestRequest(
            run_id=run.id, pool_id=pool.id, budget=1, strategy="random"))
        assert code == grpc.StatusCode.INTERNAL, (code, details)
        assert details.startswith("internal server error (reference "), details
        job = client.stub.Diagnose(pb.DiagnoseRequest(run_id=run.id))
        final = list(client.stub.WatchJob(pb.GetJobRequest(job_id=job.id)))[-1]
        assert final.state == pb.Job.FAILED and final.error.startswith("INTERNAL: internal server error")
        assert client.get_run(run.id).message.num_rows == 10
    finally:
        client.close()
        srv.stop()


def test_only_our_own_exceptions_are_the_callers_fault():
    assert status_for(InvalidArgument("budget", "x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_for(ValueError("deep inside numpy")) == grpc.StatusCode.INTERNAL
    assert status_for(KeyError("x")) == grpc.StatusCode.INTERNAL
    assert client_message(ValueError("/srv/data/runs/x.parquet: bad")).startswith("internal server error")


def test_a_strategy_the_pool_cannot_serve_names_strategy(client):
    run = _run_with_rows(client)
    pool = client.create_pool("p", embedding_dim=DIM)
    pool.add(["p0", "p1"], np.zeros((2, DIM)), progress=False)
    for strategy in ("entropy", "margin"):
        code, details = _code_and_details(lambda r: list(client.stub.Suggest(r)), pb.SuggestRequest(
            run_id=run.id, pool_id=pool.id, budget=1, strategy=strategy))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("strategy"), details
    code, details = _code_and_details(lambda r: list(client.stub.Suggest(r)), pb.SuggestRequest(
        run_id=run.id, pool_id=pool.id, budget=1, strategy="random", slice_weight=float("inf")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("slice_weight"), details
