"""Status codes at the API's edge (issue 13): client mistakes name their field, server
faults are never blamed on the caller, ids outside a caller's projects look missing.
Real servers on loopback over real data directories."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from blindspots.v1 import blindspots_pb2 as pb

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
