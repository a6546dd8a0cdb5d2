"""OpenTelemetry traces: a real server sends its spans over OTLP/HTTP to a receiver on loopback (the
OTLP protobuf schema, decoded as a collector would), and a pipeline's span reaches the server through
the SDK's ``traceparent``: its calls, and the jobs they start, are spans of the pipeline's trace."""
from __future__ import annotations

import json
import logging
import time

import pytest

from blindspots import Client, NotFoundError

from conftest import OtlpReceiver, start_server

trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402


def _attrs(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


def test_calls_and_their_jobs_are_spans_of_the_pipeline_s_trace(tmp_path, small_scenario, caplog):
    receiver = OtlpReceiver()
    server = start_server(tmp_path / "data", otlp_endpoint=receiver.endpoint)
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    s, sm = small_scenario.scenario, small_scenario
    caplog.set_level(logging.INFO, logger="blindspots.access")
    pipeline = TracerProvider().get_tracer("pipeline")       # the pipeline's own tracer, not the server's
    try:
        with pipeline.start_as_current_span("nightly-eval") as step:
            run = client.create_run("eval", class_names=s.class_names, embedding_dim=s.test.embeddings.shape[1])
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=sm.test_probs,
                                metadata=s.test.metadata, progress=False)
            pool = client.create_pool("pool", embedding_dim=s.pool.embeddings.shape[1],
                                      num_classes=len(s.class_names))
            pool.add(s.pool.ids[:2000], s.pool.embeddings[:2000], probabilities=sm.pool_probs[:2000],
                     metadata=s.pool.metadata.iloc[:2000], progress=False)
            diagnosis = run.diagnose(progress=False)
            picks = run.suggest(pool, budget=20, progress=False)
            with pytest.raises(NotFoundError):
                client.get_run("run_missing")
        assert len(picks) == 20
        outside = client.list_runs()                            # no span active: a trace of its own
    finally:
        client.close()
        server.stop()                                           # sends what is buffered
        receiver.close()

    trace_id = step.get_span_context().trace_id.to_bytes(16, "big")
    spans = [span for service, span in receiver.spans if service == "blindspots-server"]
    assert len(spans) == len(receiver.spans)
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    ours = [span for span in spans if span.trace_id == trace_id]
    calls = {span.name for span in ours if span.kind == span.SPAN_KIND_SERVER}
    assert {"blindspots.v1.Blindspots/CreateRun", "blindspots.v1.Blindspots/IngestPredictions",
            "blindspots.v1.Blindspots/CreatePool", "blindspots.v1.Blindspots/IngestPool",
            "blindspots.v1.Blindspots/Diagnose", "blindspots.v1.Blindspots/Suggest",
            "blindspots.v1.Blindspots/GetRun"} <= calls
    step_id = step.get_span_context().span_id.to_bytes(8, "big")
    for span in ours:
        if span.kind == span.SPAN_KIND_SERVER:
            assert span.parent_span_id == step_id, span.name          # children of the pipeline's span
            assert _attrs(span)["rpc.system"] == "grpc"
    (create,) = by_name["blindspots.v1.Blindspots/CreateRun"]
    assert _attrs(create)["rpc.grpc.status_code"] == "OK" and create.status.code != create.status.STATUS_CODE_ERROR
    (missing,) = by_name["blindspots.v1.Blindspots/GetRun"]
    assert _attrs(missing)["rpc.grpc.status_code"] == "NOT_FOUND" and missing.status.code == missing.status.STATUS_CODE_ERROR
    # The jobs: the diagnosis under the Diagnose call, the index build under the IngestPool call.
    (diagnose_call,) = by_name["blindspots.v1.Blindspots/Diagnose"]
    (job,) = by_name["blindspots.job/diagnose"]
    assert job.trace_id == trace_id and job.parent_span_id == diagnose_call.span_id
    assert _attrs(job)["blindspots.job_id"] == diagnosis.message.job_id != ""
    assert job.end_time_unix_nano > job.start_time_unix_nano
    (ingest_call,) = by_name["blindspots.v1.Blindspots/IngestPool"]
    (build,) = by_name["blindspots.job/index_build"]
    assert build.trace_id == trace_id and build.parent_span_id == ingest_call.span_id
    # A call outside any span starts a trace of its own.
    (listing,) = by_name["blindspots.v1.Blindspots/ListRuns"]
    assert listing.trace_id != trace_id and not listing.parent_span_id
    assert len(outside) == 1
    # The access log names each call's trace.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "blindspots.access"]
    create_line = next(line for line in lines if line["method"].endswith("/CreateRun"))
    assert create_line["trace_id"] == f"{step.get_span_context().trace_id:032x}"


def test_without_an_endpoint_no_span_is_made_and_the_log_names_no_trace(tmp_path, caplog, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    server = start_server(tmp_path / "data")
    caplog.set_level(logging.INFO, logger="blindspots.access")
    try:
        assert not server.tracing.enabled
        with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
            client.list_runs()
    finally:
        server.stop()
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "blindspots.access"
               and "ListRuns" in r.getMessage()]
    assert "trace_id" not in line


def test_the_standard_otel_variable_turns_tracing_on(tmp_path, monkeypatch):
    receiver = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    server = start_server(tmp_path / "data")
    try:
        assert server.tracing.enabled
        with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
            client.list_runs()
    finally:
        server.stop()
        receiver.close()
    deadline = time.monotonic() + 10
    while not receiver.spans and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [span.name for _, span in receiver.spans] == ["blindspots.v1.Blindspots/ListRuns"]


def test_a_server_stopped_by_sigterm_finishes_stopping_its_store_closed_and_its_last_spans_sent(tmp_path):
    """`blindspots serve` ends on SIGTERM only once stop() is done (the process used to end as soon as
    gRPC had stopped, in the middle of it): the store is closed (SQLite folds its write-ahead log back
    into the catalog, so no -wal file is left) and the spans still buffered reach the collector."""
    import signal
    import subprocess
    import sys

    import grpc

    from conftest import free_port
    receiver = OtlpReceiver()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "blindspots_server", "--data-dir", str(tmp_path / "data"),
                             "--port", str(port), "--otlp-endpoint", receiver.endpoint],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            for _ in range(3):
                client.list_runs()
            client.create_pool("p", embedding_dim=4)              # a write: the log holds it
        assert (tmp_path / "data" / "catalog.sqlite-wal").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.close()
    assert [span.name for _, span in receiver.spans].count("blindspots.v1.Blindspots/ListRuns") == 3
    assert (tmp_path / "data" / "catalog.sqlite").exists()
    assert not (tmp_path / "data" / "catalog.sqlite-wal").exists()
