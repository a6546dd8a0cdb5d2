"""Clients that open streams and send nothing cannot starve the server (real servers on loopback)."""
from __future__ import annotations

import contextlib
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from blindspots import Client
from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc

from conftest import start_server

DIM = 4


def _silent(release: threading.Event, first: pb.IngestBatch | None = None):
    """A request stream that sends ``first`` (if given), then nothing until ``release``."""
    if first is not None:
        yield first
    release.wait(60)


def _batch(run_id: str, ids: list[str]) -> pb.IngestBatch:
    n = len(ids)
    return pb.IngestBatch(run_id=run_id, batch_id="b-" + ids[0], sample_ids=ids, labels=[0] * n,
                          probabilities=np.full((n, 2), 0.5, "<f4").tobytes(),
                          embeddings=np.zeros((n, DIM), "<f4").tobytes())


@contextlib.contextmanager
def _served(tmp_path, **overrides):
    """A real server, a raw stub on its own channel, and the event that ends every silent stream."""
    server = start_server(tmp_path / "data", **overrides)
    release = threading.Event()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield server, channel, pb_grpc.BlindspotsStub(channel), release
    finally:
        release.set()
        channel.close()
        server.stop()


def _wait_for(predicate, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.05)


def test_a_hundred_idle_streams_leave_health_and_reads_answering(tmp_path):
    with _served(tmp_path) as (server, channel, stub, release):          # default limits
        with Client(f"127.0.0.1:{server.port}") as client:
            run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
        calls = [stub.IngestPredictions.future(_silent(release), timeout=60) for _ in range(100)]
        limit = server.config.max_client_streams_per_peer
        _wait_for(lambda: sum(c.done() for c in calls) == 100 - limit and server.streams.open_streams() == limit)
        refused = [c for c in calls if c.done()]
        for call in refused:
            assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many open client streams" in call.details()
            assert dict(call.trailing_metadata())["grpc-retry-pushback-ms"] == "500"
        # With the accepted streams all idle, health and reads still answer: starved, they would
        # wait for a stream to time out (30 s at the least); 10 s leaves room for a slow, loaded machine.
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(5):
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10.0).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            assert stub.GetRun(pb.GetRunRequest(run_id=run.id), timeout=10.0).num_rows == 0


def test_a_stream_that_never_sends_is_closed_and_one_that_goes_quiet_keeps_what_it_sent(tmp_path):
    with _served(tmp_path, stream_first_message_s=1, stream_idle_s=1) as (server, _, stub, release):
        with Client(f"127.0.0.1:{server.port}") as client:
            run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
            with pytest.raises(grpc.RpcError) as silent:
                stub.IngestPredictions(_silent(release), timeout=30)
            assert silent.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "no first message within 1 s" in silent.value.details()

            with pytest.raises(grpc.RpcError) as quiet:
                stub.IngestPredictions(_silent(release, _batch(run.id, ["x", "y"])), timeout=30)
            assert quiet.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "no next message within 1 s" in quiet.value.details()
            assert "1 message(s) received" in quiet.value.details()
            assert client.get_run(run.id).message.num_rows == 2      # the batch it sent was stored
            _wait_for(lambda: server.streams.open_streams() == 0)


def test_the_sdk_retries_a_stream_refused_for_the_cap(tmp_path):
    with _served(tmp_path, max_client_streams=2, max_client_streams_per_peer=2) as (server, _, stub, release):
        held = [stub.IngestPredictions.future(_silent(release), timeout=60) for _ in range(2)]
        _wait_for(lambda: server.streams.open_streams() == 2)
        threading.Timer(1.0, release.set).start()        # the idle streams end after a second
        with Client(f"127.0.0.1:{server.port}", retries=8) as client:
            run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
            summary = run.log_predictions(["a", "b", "c"], np.zeros((3, DIM)), labels=[0, 1, 0],
                                          probabilities=np.full((3, 2), 0.5),
                                          progress=False)
            assert summary.rows_stored == 3
        for call in held:
            call.exception(timeout=30)
