"""Bearer tokens scoped to projects, and TLS on the gRPC port, against real servers."""
from __future__ import annotations

import json
import shutil
import subprocess

import grpc
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from blindspots import Client
from blindspots.cli import main as cli_main
from blindspots.client import Run
from blindspots.errors import NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError
from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc
from blindspots_server.config import ServerConfig
from blindspots_server.server.app import BlindspotsServer
from blindspots_server.server.auth import TokenTable

from conftest import start_server

TOKEN_A = "token-for-team-a-0123456789"
TOKEN_B = "token-for-team-b-0123456789"
TOKEN_ADMIN = "token-for-the-admins-012345"
TOKEN_READER = "token-for-a-dashboard-0123"


@pytest.fixture
def auth_server(tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({TOKEN_A: ["alpha"], TOKEN_B: ["beta", "gamma"], TOKEN_ADMIN: ["*"],
                                  TOKEN_READER: {"projects": ["alpha"], "access": "read"}}))
    srv = start_server(tmp_path / "data", auth_tokens_file=str(tokens))
    yield srv
    srv.stop()


def _client(server, token=None) -> Client:
    return Client(f"127.0.0.1:{server.port}", token=token, retries=0, timeout=60)


def _fill(run) -> None:
    run.log_predictions(["a", "b"], np.zeros((2, 4)), labels=[0, 1], probabilities=[[0.9, 0.1], [0.2, 0.8]],
                        progress=False)


def test_token_reads_its_projects_and_nothing_else(auth_server):
    with _client(auth_server, TOKEN_A) as a, _client(auth_server, TOKEN_B) as b, \
            _client(auth_server, TOKEN_ADMIN) as admin:
        run_a = a.create_run("ra", class_names=["x", "y"], embedding_dim=4, project="alpha")
        _fill(run_a)
        run_b = b.create_run("rb", class_names=["x", "y"], embedding_dim=4, project="beta")
        pool_b = b.create_pool("pb", embedding_dim=4, project="gamma")

        assert a.get_run(run_a.id).message.num_rows == 2
        assert [r.id for r in a.list_runs()] == [run_a.id]           # only what the token grants
        assert {r.id for r in b.list_runs()} == {run_b.id}
        assert {r.id for r in admin.list_runs()} == {run_a.id, run_b.id}
        assert [p.id for p in b.list_pools()] == [pool_b.id] and a.list_pools() == []

        # A project the caller names that its token does not grant: PERMISSION_DENIED naming it.
        for call in (lambda: a.list_runs(project="beta"),
                     lambda: a.create_run("sneaky", class_names=["x", "y"], embedding_dim=4, project="beta")):
            with pytest.raises(PermissionDeniedError, match="'beta'"):
                call()
        # An id outside the caller's projects looks exactly like an id that does not exist
        # (issue 13, defect 11: PERMISSION_DENIED for existing ids was an existence oracle).
        diagnosis = run_a.diagnose(progress=False)
        for call, missing in (
                (lambda: a.get_run(run_b.id), f"run '{run_b.id}' not found"),
                (lambda: a.get_run("run_0000000000000000"), "run 'run_0000000000000000' not found"),
                (lambda: a.get_pool(pool_b.id), f"pool '{pool_b.id}' not found"),
                (lambda: a.get_pool("pool_0000000000000000"), "pool 'pool_0000000000000000' not found"),
                (lambda: b.get_run(run_a.id), f"run '{run_a.id}' not found"),
                (lambda: b.get_diagnosis(run_id=run_a.id), f"run '{run_a.id}' not found"),
                (lambda: b.get_diagnosis(diagnosis.id), f"diagnosis '{diagnosis.id}' not found"),
                (lambda: b.get_diagnosis("diag_0000000000000000"), "diagnosis 'diag_0000000000000000' not found"),
                (lambda: b.suggest(run_a.id, pool_b.id, budget=1, strategy="random", progress=False),
                 f"run '{run_a.id}' not found"),
                (lambda: b.suggest("", pool_b.id, diagnosis_id=diagnosis.id, budget=1, progress=False),
                 f"diagnosis '{diagnosis.id}' not found")):
            with pytest.raises(NotFoundError) as info:
                call()
            assert info.value.details == missing
        # Writing into another team's run is refused before anything is stored.
        with pytest.raises(NotFoundError):
            Run(b, run_a.message).log_predictions(["c"], np.zeros((1, 4)), labels=[0], probabilities=[[1.0, 0.0]],
                                                  progress=False)
        assert admin.get_run(run_a.id).message.num_rows == 2

        # A job belongs to its run's project: team b can neither watch nor cancel team a's diagnosis,
        # and cannot tell it from a job id that never existed.
        job = run_a.diagnose(wait=False)
        for job_id in (job.id, "job_0000000000000000"):
            for method in (b.stub.GetJob, b.stub.CancelJob):
                with pytest.raises(grpc.RpcError) as info:
                    method(pb.GetJobRequest(job_id=job_id), metadata=b._metadata)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                assert info.value.details() == f"job '{job_id}' not found"
        a.wait_job(job.id, progress=False)


def test_missing_or_unknown_token_is_unauthenticated(auth_server):
    for token in (None, "not-a-token-anyone-was-given"):
        with _client(auth_server, token) as c:
            with pytest.raises(UnauthenticatedError):
                c.list_runs()
            with pytest.raises(UnauthenticatedError):
                c.create_run("r", class_names=["x", "y"], embedding_dim=4, project="alpha")
    channel = grpc.insecure_channel(f"127.0.0.1:{auth_server.port}")
    stub = pb_grpc.BlindspotsStub(channel)
    for metadata in ((("authorization", f"Basic {TOKEN_A}"),), (("authorization", TOKEN_A),)):
        with pytest.raises(grpc.RpcError) as info:
            stub.ListRuns(pb.ListRunsRequest(), metadata=metadata)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:      # server streaming goes through the same check
        list(stub.WatchJob(pb.GetJobRequest(job_id="job_x")))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_health_and_reflection_stay_open_with_auth(auth_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{auth_server.port}")
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="")).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in answers[0].list_services_response.service}
    assert "blindspots.v1.Blindspots" in names
    channel.close()


def test_tokens_from_the_environment_setting(tmp_path):
    config = ServerConfig.from_env({"BLINDSPOTS_TOKENS": json.dumps({TOKEN_A: "alpha"})},
                                   data_dir=str(tmp_path / "d"), port=0)
    assert TOKEN_A not in repr(config)
    srv = BlindspotsServer(config).start()
    try:
        with _client(srv, TOKEN_A) as a, _client(srv, TOKEN_B) as b:
            a.create_run("r", class_names=["x", "y"], embedding_dim=4, project="alpha")
            with pytest.raises(UnauthenticatedError):
                b.list_runs()
    finally:
        srv.stop()


def test_a_read_only_token_reads_its_projects_and_writes_nothing(auth_server):
    with _client(auth_server, TOKEN_A) as a, _client(auth_server, TOKEN_READER) as reader, \
            _client(auth_server, TOKEN_B) as b:
        run = a.create_run("ra", class_names=["x", "y"], embedding_dim=4, project="alpha")
        _fill(run)
        diagnosis = run.diagnose(progress=False)
        pool = a.create_pool("pa", embedding_dim=4, project="alpha")
        pool.add(["p1", "p2"], np.zeros((2, 4)), progress=False)
        other = b.create_run("rb", class_names=["x", "y"], embedding_dim=4, project="beta")
        # Reads of its project work; another project's ids are missing, as for any token.
        assert [r.id for r in reader.list_runs()] == [run.id]
        assert reader.get_diagnosis(run_id=run.id).id == diagnosis.id
        assert reader.labels_frame(pool_id=pool.id).empty
        assert reader.get_run_map(run.id) is not None
        with pytest.raises(NotFoundError):
            reader.get_run(other.id)
        # Stored suggestion sets are reads: the reader fetches its project's; another project's
        # token gets NOT_FOUND for them, as for a missing id.
        made = a.suggest(run.id, pool.id, budget=1, strategy="random", progress=False).attrs["suggestion_set"]
        assert reader.list_suggestion_sets(run)["id"].tolist() == [made]
        assert len(reader.get_suggestion_set(made)) == 1
        with pytest.raises(NotFoundError, match=made):
            b.get_suggestion_set(made)
        with pytest.raises(NotFoundError):
            b.list_suggestion_sets(pool=pool.id)
        with pytest.raises(NotFoundError, match=made):
            b.delete_suggestion_set(made)
        # Every write is PERMISSION_DENIED naming the method, before anything happens.
        writes = {
            "CreateRun": lambda: reader.create_run("r", class_names=["x", "y"], embedding_dim=4, project="alpha"),
            "IngestPredictions": lambda: Run(reader, run.message).log_predictions(
                ["c"], np.zeros((1, 4)), labels=[0], probabilities=[[1.0, 0.0]], progress=False),
            "Diagnose": lambda: reader.get_run(run.id).diagnose(wait=False),
            "Suggest": lambda: reader.suggest(run.id, pool.id, budget=1, strategy="random", progress=False),
            "ImportLabels": lambda: reader.import_labels(pd.DataFrame({"sample_id": ["p1"], "label": ["x"]}),
                                                         pool_id=pool.id),
            "CancelJob": lambda: reader.cancel_job("job_0000000000000000"),
            "DeleteRun": lambda: reader.delete_run(run.id),
            "DeletePool": lambda: reader.delete_pool(pool.id),
            "DeleteSuggestionSet": lambda: reader.delete_suggestion_set(made)}
        for method, call in writes.items():
            with pytest.raises(PermissionDeniedError, match=f"read-only; {method} needs"):
                call()
        assert a.get_run(run.id).message.num_rows == 2 and a.labels_frame(pool_id=pool.id).empty
        assert a.list_suggestion_sets(run)["id"].tolist() == [made]
        assert [p.id for p in a.list_pools()] == [pool.id]


def test_a_token_lists_and_reads_the_jobs_of_its_projects_runs_and_pools(auth_server):
    """ListJobs: each token sees the jobs of its projects' runs and pools (a read-only token too), and
    reads each by id; another project named is PERMISSION_DENIED, another project's run, pool or job
    NOT_FOUND, as for any read."""
    with _client(auth_server, TOKEN_A) as a, _client(auth_server, TOKEN_B) as b, \
            _client(auth_server, TOKEN_ADMIN) as admin, _client(auth_server, TOKEN_READER) as reader:
        run_a = a.create_run("ra", class_names=["x", "y"], embedding_dim=4, project="alpha")
        _fill(run_a)
        job_a = run_a.diagnose(wait=False).id
        run_b = b.create_run("rb", class_names=["x", "y"], embedding_dim=4, project="beta")
        _fill(run_b)
        job_b = run_b.diagnose(wait=False).id
        pool = b.create_pool("pb", embedding_dim=4, project="beta")
        pool.add(["p1", "p2"], np.zeros((2, 4)), progress=False)
        for job in (job_a, job_b):
            admin.wait_job(job, progress=False)
        everything = admin.list_jobs()
        builds = everything[everything["kind"] == "index_build"]
        assert builds[["run_id", "pool_id"]].values.tolist() == [["", pool.id]]
        (build,) = builds["id"]
        assert set(everything["id"]) == {job_a, job_b, build}
        assert a.list_jobs()["id"].tolist() == [job_a] == reader.list_jobs()["id"].tolist()
        assert b.list_jobs()["id"].tolist() == [build, job_b]                     # its pool's index build too
        assert b.list_jobs(pool=pool)["id"].tolist() == [build] == admin.list_jobs(kind="index_build")["id"].tolist()
        assert admin.list_jobs(project="beta")["id"].tolist() == [build, job_b]
        assert b.get_job(build).pool_id == pool.id
        with pytest.raises(PermissionDeniedError, match="'beta'"):
            a.list_jobs(project="beta")
        with pytest.raises(NotFoundError, match=run_b.id):
            a.list_jobs(run=run_b.id)
        with pytest.raises(NotFoundError, match=pool.id):
            a.list_jobs(pool=pool.id)
        with pytest.raises(NotFoundError, match=f"job '{build}' not found"):
            a.get_job(build)


def test_every_method_is_a_read_or_needs_write_access():
    """A new RPC is a write for read-only tokens until it is listed as a read: this test names
    both lists, so adding a method means deciding which it is."""
    from blindspots_server.server.auth import READ_METHODS
    methods = set(pb.DESCRIPTOR.services_by_name["Blindspots"].methods_by_name)
    assert READ_METHODS <= methods
    assert methods - READ_METHODS == {"CreateRun", "IngestPredictions", "CreatePool", "IngestPool", "Diagnose",
                                      "CancelJob", "Suggest", "ImportLabels", "DeleteRun", "DeletePool",
                                      "DeleteSuggestionSet"}


def test_bad_token_tables_fail_at_start(tmp_path):
    for text in ("not json", "{}", json.dumps({"short": ["a"]}), json.dumps({TOKEN_A: []}),
                 json.dumps({TOKEN_A: {"projects": ["a"], "access": "admin"}}),
                 json.dumps({TOKEN_A: {"projects": ["a"], "role": "read"}}), json.dumps({TOKEN_A: {"access": "read"}})):
        path = tmp_path / "t.json"
        path.write_text(text)
        with pytest.raises(ValueError):
            BlindspotsServer(ServerConfig(data_dir=str(tmp_path / "d"), port=0, auth_tokens_file=str(path)))


def test_token_table_keeps_only_digests():
    table = TokenTable({TOKEN_A: ["alpha"], TOKEN_ADMIN: ["*"]})
    assert TOKEN_A.encode() not in repr(vars(table)).encode()
    assert table.lookup(TOKEN_A).projects == ("alpha",)
    assert table.lookup(TOKEN_ADMIN).all_projects
    assert table.lookup(TOKEN_A + "x") is None and table.lookup("") is None


# ------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throwaway CA and a server certificate for localhost/127.0.0.1 it signed."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("pki")

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=blindspots test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem",
        "-days", "2", "-subj", "/CN=some other CA")
    return d


@pytest.fixture
def tls_server(tmp_path, certs):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({TOKEN_A: ["alpha"]}))
    srv = start_server(tmp_path / "data", tls_cert=str(certs / "server.pem"), tls_key=str(certs / "server.key"),
                       auth_tokens_file=str(tokens))
    yield srv
    srv.stop()


def test_tls_with_the_right_ca_and_token(tls_server, certs):
    with Client(f"localhost:{tls_server.port}", token=TOKEN_A, root_certificates=str(certs / "ca.pem"),
                retries=0, timeout=60) as c:
        run = c.create_run("over-tls", class_names=["x", "y"], embedding_dim=4, project="alpha")
        _fill(run)
        assert c.get_run(run.id).message.num_rows == 2


def test_tls_refuses_plaintext_and_unknown_ca(tls_server, certs):
    with Client(f"localhost:{tls_server.port}", token=TOKEN_A, retries=0, timeout=10) as plain:
        with pytest.raises(UnavailableError):
            plain.list_runs()
    with Client(f"localhost:{tls_server.port}", token=TOKEN_A, root_certificates=str(certs / "other.pem"),
                retries=0, timeout=10) as wrong_ca:
        with pytest.raises(UnavailableError):
            wrong_ca.list_runs()


def test_cli_uses_ca_and_token(tls_server, certs, capsys):
    address = f"localhost:{tls_server.port}"
    assert cli_main(["runs", "--address", address, "--ca", str(certs / "ca.pem"), "--token", TOKEN_A]) == 0
    assert "no runs" in capsys.readouterr().out
    assert cli_main(["runs", "--address", address, "--ca", str(certs / "ca.pem"), "--token", TOKEN_B]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_the_sdk_reads_the_clis_environment_and_explicit_arguments_win(tls_server, certs, monkeypatch):
    monkeypatch.setenv("BLINDSPOTS_ADDRESS", f"localhost:{tls_server.port}")
    monkeypatch.setenv("BLINDSPOTS_TOKEN", TOKEN_A)
    monkeypatch.setenv("BLINDSPOTS_CA", str(certs / "ca.pem"))
    with Client(retries=0, timeout=60) as c:                  # a pipeline step configured like the CLI
        assert c.create_run("from-env", class_names=["x", "y"], embedding_dim=4, project="alpha").id
    with Client(token=TOKEN_B, retries=0, timeout=10) as c:
        with pytest.raises(UnauthenticatedError):
            c.list_runs()
    with Client(root_certificates=str(certs / "other.pem"), retries=0, timeout=10) as c:
        with pytest.raises(UnavailableError):
            c.list_runs()
    monkeypatch.setenv("BLINDSPOTS_ADDRESS", "127.0.0.1:1")   # nothing listens there
    with Client(f"localhost:{tls_server.port}", retries=0, timeout=60) as c:
        assert [r.name for r in c.list_runs()] == ["from-env"]


def test_tls_needs_both_files(tmp_path, certs):
    srv = BlindspotsServer(ServerConfig(data_dir=str(tmp_path / "d"), port=0, tls_cert=str(certs / "server.pem")))
    try:
        with pytest.raises(ValueError, match="tls_key"):
            srv.start()
    finally:
        srv.store.close()
