"""Shared fixtures: real servers on loopback over real data directories."""
from __future__ import annotations

import os
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from blindspots import Client
from blindspots_server.config import ServerConfig
from blindspots_scenarios.listings import Scenario, make_scenario, train_model
from blindspots_server.server.app import BlindspotsServer

import pgtest
from pgtest import free_port  # noqa: F401  (tests import it from here)


def start_server(data_dir, **overrides) -> BlindspotsServer:
    """A real server bound to a free loopback port."""
    config = ServerConfig(data_dir=str(data_dir), host="127.0.0.1", port=0, job_workers=2, **overrides)
    return BlindspotsServer(config).start()


def metrics_text(server: BlindspotsServer) -> str:
    """The server's Prometheus exposition, scraped over HTTP."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_sample(exposition: str, name: str, **labels) -> float:
    """The value of the sample ``name`` with exactly ``labels`` in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families
    return next(s.value for family in text_string_to_metric_families(exposition) for s in family.samples
                if s.name == name and s.labels == labels)


def index_builds_done(server: BlindspotsServer, pools: int, timeout_s: float = 120) -> None:
    """Wait for the index-build jobs that ingesting ``pools`` pools started (their order varies)."""
    from prometheus_client.parser import text_string_to_metric_families
    deadline = time.monotonic() + timeout_s
    while True:
        done = sum(s.value for family in text_string_to_metric_families(metrics_text(server))
                   for s in family.samples if s.name == "blindspots_job_duration_seconds_count"
                   and s.labels.get("kind") == "index_build")
        if done >= pools:
            return
        assert time.monotonic() < deadline, "the index builds did not finish"
        time.sleep(0.1)


class OtlpReceiver:
    """Accepts OTLP/HTTP trace exports (POST /v1/traces, protobuf) on loopback, as a collector would, and
    keeps their spans as (service name, span) pairs (needs the `tracing` extra: opentelemetry)."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_service
        self.spans: list = []
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service.ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
                    for scope in resource.scope_spans:
                        received.extend((service, span) for span in scope.spans)
                answer = trace_service.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._http.server_port}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self):
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    c = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    yield c
    c.close()


@dataclass
class ScenarioWithModel:
    scenario: Scenario
    test_probs: np.ndarray
    pool_probs: np.ndarray


@pytest.fixture(scope="session")
def small_scenario() -> ScenarioWithModel:
    s = make_scenario(n_train=3000, n_test=3000, n_pool=6000, seed=1)
    model = train_model(s.train, seed=1, epochs=25)
    return ScenarioWithModel(s, model.predict_proba(s.test.embeddings), model.predict_proba(s.pool.embeddings))


@pytest.fixture
def two_versions(client, small_scenario):
    """Two diagnosed versions of one model through a real server: v2 gets one camera's rows wrong,
    so its diagnosis compares with v1's and finds regressions. (v1, v2) as SDK Diagnosis objects
    (the experiment-tracker tests log them)."""
    s = small_scenario.scenario
    broken = small_scenario.test_probs.copy()
    cam = (s.test.metadata["camera"] == "cam_e").to_numpy()
    broken[cam] = np.roll(broken[cam], 1, axis=1)

    def diagnosed(version, probabilities):
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=128, model_name="mlp",
                                model_version=version)
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=probabilities,
                            metadata=s.test.metadata, progress=False)
        return run.diagnose(progress=False)

    v1 = diagnosed("v1", small_scenario.test_probs)
    v2 = diagnosed("v2", broken)
    assert len(v2.previous_version.regressions())
    return v1, v2


@pytest.fixture(scope="session")
def postgres_database():
    """A fresh PostgreSQL database for the session (see tests/pgtest.py); FAILS if none can be had."""
    try:
        with pgtest.fresh_database() as uri:
            yield uri
    except pgtest.NoPostgres as exc:
        if os.environ.get(pgtest.ENV_OPT_OUT) == "1":
            pytest.skip(f"{exc} ({pgtest.ENV_OPT_OUT}=1)")
        pytest.fail(f"{exc}; or set {pgtest.ENV_OPT_OUT}=1 to skip the PostgreSQL tests", pytrace=False)


@pytest.fixture
def postgres_uri(postgres_database) -> str:
    """A postgresql:// URI of an empty catalog of its own (a fresh schema)."""
    return pgtest.fresh_schema(postgres_database)
