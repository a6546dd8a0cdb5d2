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
