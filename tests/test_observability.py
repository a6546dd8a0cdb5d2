"""Observability end to end: a real Prometheus scrapes a real server that has
ingested, diagnosed and suggested through the SDK; every PromQL expression of
the Grafana dashboard must return data. Reflection and health are checked with
grpc's own reflection client; access logs and cardinality bounds directly."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from blindspots import Client
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.config import ServerConfig
from blindspots_scenarios.listings import make_scenario, train_model
from blindspots_server.server.app import BlindspotsServer
from blindspots_server.server.telemetry import Telemetry

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "blindspots.json"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus")
MODEL = "listings-mlp"
# What Grafana would put in place of its variables; "All" is ".*" (the variables' allValue).
# Windows are wide so that a slow, busy machine still has the whole workload inside them.
GRAFANA_VARS = {"$__rate_interval": "10m", "$__range": "10m", "$project": ".*", "$model": ".*", "$slice": ".*"}

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (`make test-tools` installs Debian's)")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class PrometheusProcess:
    """A real Prometheus on loopback with deploy/'s configuration and alerting rules, scraping
    ``target`` and evaluating the rules every second."""

    def __init__(self, target: str, workdir: Path):
        config = SCRAPE_CONFIG.read_text()
        assert '"blindspots:9100"' in config and "scrape_interval: 15s" in config
        assert "evaluation_interval: 15s" in config
        config = (config.replace('"blindspots:9100"', f'"{target}"').replace("scrape_interval: 15s", "scrape_interval: 1s")
                  .replace("evaluation_interval: 15s", "evaluation_interval: 1s"))
        (workdir / "prometheus.yml").write_text(config)
        shutil.copy(ALERT_RULES, workdir / ALERT_RULES.name)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict]:
        body = _get_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def alerts(self, name: str) -> list[dict]:
        """The active alerts (pending or firing) of the rule ``name``: labels, state, value."""
        body = _get_json(f"{self.url}/api/v1/alerts")
        assert body["status"] == "success", body
        return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == name]

    def label_values(self, label: str, match: str) -> list[str]:
        body = _get_json(f"{self.url}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match}))
        return body["data"]

    def wait(self, check, timeout: float = 30.0, what: str = ""):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.log.name}"
            try:
                last = check()
                if last:
                    return last
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; last answer {last!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dash["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            exprs += [t["expr"] for t in p.get("targets", [])]
    return exprs


def _as_promql(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr!r}"
    return expr


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """A server that ran the whole SDK flow for two model versions, scraped by Prometheus throughout."""
    tmp = tmp_path_factory.mktemp("observability")
    server = BlindspotsServer(ServerConfig(data_dir=str(tmp / "data"), host="127.0.0.1", port=0,
                                           metrics_port=free_port(), metrics_top_k=5)).start()
    prom = PrometheusProcess(f"127.0.0.1:{server.metrics_port}", tmp)
    client = Client(f"127.0.0.1:{server.port}", timeout=120)
    try:
        # Scraped before any work, so that rate() sees every increment of the workload.
        prom.wait(lambda: prom.query('up{job="blindspots"} == 1'), what="the first scrape")
        s = make_scenario(n_train=2000, n_test=2000, n_pool=3000)
        pool = client.create_pool("unlabeled", embedding_dim=s.pool.embeddings.shape[1],
                                  num_classes=len(s.class_names))
        runs = {}
        for seed, version in enumerate(("v1", "v2")):
            model = train_model(s.train, seed=seed, epochs=20)
            run = client.create_run(f"eval-{version}", class_names=s.class_names,
                                    embedding_dim=s.test.embeddings.shape[1], model_name=MODEL,
                                    model_version=version, dataset_name="listings-test")
            probabilities = model.predict_proba(s.test.embeddings)
            if version == "v2":     # v2 breaks on one camera: the regression panels have something to show
                broken = s.test.metadata["camera"].eq("cam_d").to_numpy()
                probabilities[broken] = np.roll(probabilities[broken], 1, axis=1)
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels,
                                probabilities=probabilities, metadata=s.test.metadata, uris=s.test.uris)
            if seed == 0:
                pool.add(s.pool.ids, s.pool.embeddings, probabilities=model.predict_proba(s.pool.embeddings),
                         metadata=s.pool.metadata, uris=s.pool.uris)
            run.diagnose(progress=False)
            runs[version] = run
        runs["v2"].suggest(pool, budget=100)
        with pytest.raises(Exception):
            client.get_run("run_does_not_exist")   # a NOT_FOUND for the error panels
        yield server, prom, client, runs, pool
    finally:
        client.close()
        prom.stop()
        server.stop()


def test_every_dashboard_query_returns_data(observed):
    _, prom, *_ = observed
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        promql = _as_promql(expr)

        def finite_result():
            result = prom.query(promql)
            return result if any(math.isfinite(float(r["value"][1])) for r in result) else None

        prom.wait(finite_result, timeout=20, what=promql)
    # The workload shows up as non-zero rates, not only as series.
    for promql in ('sum(rate(grpc_server_handled_total{grpc_code="NOT_FOUND"}[10m]))',
                   'sum(rate(blindspots_ingested_rows_total{target="pool"}[10m]))',
                   'sum(rate(blindspots_suggestions_served_total{strategy="targeted"}[10m]))',
                   'sum(rate(blindspots_job_duration_seconds_count{kind="diagnose", state="SUCCEEDED"}[10m]))'):
        prom.wait(lambda: float(prom.query(promql)[0]["value"][1]) > 0, timeout=10, what=promql)


def test_dashboard_variables_have_values(observed):
    _, prom, *_ = observed
    dash = json.loads(DASHBOARD.read_text())
    queries = [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    assert queries
    for query in queries:
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert m, query
        values = prom.wait(lambda: prom.label_values(m.group(2), _as_promql(m.group(1))), what=query)
        assert values
    assert MODEL in prom.label_values("model", "blindspots_run_error_rate")


def test_same_slice_tracked_across_model_versions(observed):
    _, prom, *_ = observed
    # Stable slice names: some slice is among the top-K of both versions' diagnoses.
    # Waited for: run alone or first, no scrape may have come since v2's diagnosis.
    both = prom.wait(lambda: prom.query(f'count by (slice) (blindspots_slice_error_rate{{model="{MODEL}"}}) == 2'),
                     what="a slice name shared by v1 and v2")
    name = both[0]["metric"]["slice"]
    series = prom.query(f'blindspots_slice_error_rate{{model="{MODEL}", slice="{name}"}}')
    assert sorted(r["metric"]["model_version"] for r in series) == ["v1", "v2"]
    overall = prom.query(f'blindspots_run_error_rate{{model="{MODEL}"}}')
    assert {r["metric"]["model_version"] for r in overall} == {"v1", "v2"}
    assert all(0 < float(r["value"][1]) < 1 for r in overall)


def test_rpc_metrics_count_codes_and_ignore_unknown_methods(observed):
    server, *_ = observed
    reg = server.telemetry.registry
    labels = {"grpc_service": "blindspots.v1.Blindspots", "grpc_type": "unary"}
    assert reg.get_sample_value("grpc_server_handled_total",
                                {**labels, "grpc_method": "GetRun", "grpc_code": "NOT_FOUND"}) >= 1
    assert reg.get_sample_value("grpc_server_handled_total",
                                {**labels, "grpc_method": "Diagnose", "grpc_code": "OK"}) == 2
    assert reg.get_sample_value("grpc_server_handled_total",
                                {"grpc_service": "blindspots.v1.Blindspots", "grpc_type": "server_stream",
                                 "grpc_method": "Suggest", "grpc_code": "OK"}) == 1
    before = len(list(reg.collect()))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/attacker.Chosen/Name")(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    names = {s.labels.get("grpc_method") for m in reg.collect() for s in m.samples}
    assert "Name" not in names and len(list(reg.collect())) == before
    assert reg.get_sample_value("blindspots_store_size_bytes") > 0


def test_access_log_has_one_json_line_per_request(observed, caplog):
    server, _, client, runs, pool = observed
    caplog.set_level("INFO", logger="blindspots.access")
    client.get_run(runs["v1"].id)
    with pytest.raises(Exception):
        client.get_run("run_missing")
    runs["v1"].suggest(pool, budget=10)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "blindspots.access"]
    by_method = {line["method"].rsplit("/", 1)[1]: line for line in lines}
    ok = [l for l in lines if l["method"].endswith("/GetRun") and l["code"] == "OK"]
    missing = [l for l in lines if l["method"].endswith("/GetRun") and l["code"] == "NOT_FOUND"]
    assert ok and ok[0]["run_id"] == runs["v1"].id and missing and missing[0]["run_id"] == "run_missing"
    suggest = by_method["Suggest"]
    assert suggest["code"] == "OK" and suggest["run_id"] == runs["v1"].id and suggest["pool_id"] == pool.id
    for line in lines:
        assert line["duration_ms"] >= 0 and line["peer"].startswith(("ipv4:", "ipv6:"))


def test_reflection_lists_services_and_health_is_serving(observed):
    server, *_ = observed
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"blindspots.v1.Blindspots", "grpc.health.v1.Health"} <= services
        described = db.FindFileContainingSymbol("blindspots.v1.Blindspots")
        assert any(s.name == "Blindspots" for s in described.service)
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "blindspots.v1.Blindspots"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_quality_metrics_are_bounded_and_restored_from_the_store(observed):
    server, _, _, runs, _ = observed
    store = server.store
    # A fresh Telemetry re-exports what the store holds, as a restarted server does.
    restored = Telemetry(top_k=3, max_runs=1)
    assert restored.sync(store) == 1
    exported = {s.labels["run_id"] for m in restored.registry.collect() for s in m.samples
                if s.name == "blindspots_slice_error_rate"}
    assert exported == {runs["v2"].id}    # the most recently diagnosed run; v1 retired
    slices = [s for m in restored.registry.collect() for s in m.samples if s.name == "blindspots_slice_error_rate"]
    assert 0 < len(slices) <= 3 + 2 * 3     # top_k top slices and up to 2 x top_k tracked ones
    # Re-diagnosing v1 makes it the newest and retires v2's series.
    run_v1 = store.get_run(runs["v1"].id)
    restored.diagnosis_saved(run_v1, pb.Diagnosis.FromString(store.latest_diagnosis(run_v1.id).payload))
    runs_left = {s.labels["run_id"] for m in restored.registry.collect() for s in m.samples
                 if s.name.startswith(("blindspots_slice_", "blindspots_region_", "blindspots_run_"))}
    assert runs_left == {run_v1.id}
