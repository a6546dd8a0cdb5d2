"""Property tests: generated (often malformed) requests against a live server.

Every request gets a definite status (never INTERNAL/UNKNOWN), the server stays
up, and afterwards the store holds exactly what the accepted batches imply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc

from conftest import start_server

DIM, CLASSES = 4, 3
DEFINITE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("props") / "data", max_batch_rows=64)
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    yield srv, pb_grpc.BlindspotsStub(channel), health_pb2_grpc.HealthStub(channel)
    channel.close()
    srv.stop()


def _new_run(stub) -> str:
    return stub.CreateRun(pb.CreateRunRequest(name="prop", class_names=[f"c{i}" for i in range(CLASSES)],
                                              embedding_dim=DIM)).id


def _send(stub, batches):
    """(code, details, response) of one IngestPredictions stream."""
    try:
        return grpc.StatusCode.OK, "", stub.IngestPredictions(iter(batches), timeout=30)
    except grpc.RpcError as err:
        return err.code(), err.details() or "", None


def _stored_prefix(code, details: str, n: int) -> int:
    """How many batches of an n-batch stream the server processed, from its answer."""
    if code == grpc.StatusCode.OK:
        return n
    m = re.search(r"the (\d+) batches before it", details)
    if m:
        return int(m.group(1))
    assert "nothing of the stream was stored" in details, details
    return 0


def _assert_alive(health) -> None:
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------ a model of ingestion

FIELD_OF = {"wrong_dim": "embeddings", "nan_embedding": "embeddings", "label_range": "labels",
            "labels_short": "labels", "probs_not_normalised": "probabilities", "inf_logits": "probabilities",
            "empty_id": "sample_ids", "dup_in_batch": "sample_ids", "empty_batch_id": "batch_id",
            "uris_short": "uris", "meta_short": "metadata", "too_many_rows": "sample_ids", "no_rows": "sample_ids"}
CORRUPTIONS = ["none", "none", "none", "wrong_dim", "nan_embedding", "probs_not_normalised", "label_range",
               "labels_short", "empty_id", "dup_in_batch", "empty_batch_id", "uris_short", "meta_short",
               "meta_as_string", "other_run", "inf_logits", "too_many_rows", "no_rows"]


@dataclass
class Model:
    """What the server should hold for one run, given the batches sent so far."""

    batch_ids: set[str] = field(default_factory=set)
    sample_ids: list[str] = field(default_factory=list)
    meta_type: str = ""
    # What decides a stored row's content in _build: (seed, logits, rows in its batch, its position).
    content: dict[str, tuple] = field(default_factory=dict)

    def apply(self, spec) -> grpc.StatusCode:
        """Expected status of one batch; updates the model when it is stored."""
        if spec["corruption"] not in ("none", "meta_as_string"):
            return grpc.StatusCode.INVALID_ARGUMENT
        if spec["batch_id"] in self.batch_ids:
            return grpc.StatusCode.OK                       # a retry: acknowledged, stored once
        kind = "string" if spec["corruption"] == "meta_as_string" else "number"
        if self.meta_type and kind != self.meta_type:
            return grpc.StatusCode.FAILED_PRECONDITION
        # Per-row idempotency: an id stored before with the same content is skipped,
        # with other content the batch is a clash.
        keys = {sid: (spec["seed"], spec["logits"], len(spec["ids"]), i) for i, sid in enumerate(spec["ids"])}
        if any(sid in self.content and self.content[sid] != key for sid, key in keys.items()):
            return grpc.StatusCode.INVALID_ARGUMENT
        new = [sid for sid in spec["ids"] if sid not in self.content]
        if new:
            # A batch id is recorded with the rows its batch stored: one whose rows were all
            # stored before leaves no record, and a resend of it is checked row by row again.
            self.batch_ids.add(spec["batch_id"])
        self.sample_ids.extend(new)
        self.content.update({sid: keys[sid] for sid in new})
        self.meta_type = kind
        return grpc.StatusCode.OK


batch_specs = st.fixed_dictionaries({
    # Few ids and batch ids, so that repeats across batches (retries, clashes) are common.
    "ids": st.lists(st.sampled_from([f"s{i}" for i in range(24)]), min_size=1, max_size=6, unique=True),
    "batch_id": st.sampled_from(["b1", "b2", "b3", "b4", "b5", "b6"]),
    "corruption": st.sampled_from(CORRUPTIONS),
    "seed": st.integers(0, 2 ** 16),
    "logits": st.booleans(),
})


def _build(run_id: str, spec) -> pb.IngestBatch:
    # Logits and probabilities draw from different streams, so rows sent both ways never share content.
    rng = np.random.default_rng([spec["seed"], int(spec["logits"])])
    ids = list(spec["ids"])
    c = spec["corruption"]
    if c == "dup_in_batch":
        ids = ids + ids[:1]
    if c == "too_many_rows":
        ids = [f"big{i}" for i in range(65)]
    if c == "no_rows":
        ids = []
    n = len(ids)
    emb = rng.normal(size=(n, DIM + (1 if c == "wrong_dim" else 0))).astype("<f4")
    if c == "nan_embedding" and n:
        emb[0, 0] = np.nan
    scores = rng.normal(size=(n, CLASSES)).astype("<f4")
    logits = spec["logits"] and c != "probs_not_normalised"
    if logits:
        probs = scores
        if c == "inf_logits" and n:
            probs[0, 0] = np.inf
    else:
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs = (e / e.sum(axis=1, keepdims=True)).astype("<f4")
        if c == "probs_not_normalised" and n:
            probs[0] *= 1.5
        if c == "inf_logits" and n:
            probs[0, 0] = np.inf
    labels = rng.integers(0, CLASSES, size=n).tolist()
    if c == "label_range" and n:
        labels[0] = CLASSES
    if c == "labels_short":
        labels = labels[:-1]
    if c == "empty_id" and n:
        ids[0] = ""
    numbers = rng.normal(size=n - (c == "meta_short")).tolist()
    meta = (pb.Column(name="city", strings=pb.StringValues(values=["x"] * n)) if c == "meta_as_string" else
            pb.Column(name="city", numbers=pb.NumberValues(values=numbers)))
    uris = [f"u/{i}" for i in ids][: n - 1 if c == "uris_short" else n]
    if c == "uris_short" and n == 1:
        uris = ["a", "b"]
    return pb.IngestBatch(run_id="run_elsewhere" if c == "other_run" else run_id,
                          batch_id="" if c == "empty_batch_id" else spec["batch_id"], sample_ids=ids,
                          labels=labels, probabilities=probs.tobytes(), embeddings=emb.tobytes(),
                          probabilities_are_logits=logits, metadata=[meta], uris=uris)


@SETTINGS
def _same_rows_twice(seed_again: int) -> list:
    spec = {"ids": [f"s{i}" for i in range(6)], "batch_id": "b1", "corruption": "none", "seed": 0, "logits": False}
    return [[spec, {**spec, "batch_id": "b2", "seed": seed_again}]]


def _id_of_a_batch_that_stored_nothing(then: dict) -> list:
    first = {"ids": ["s1"], "batch_id": "b2", "corruption": "none", "seed": 0, "logits": False}
    return [[first, {**first, "batch_id": "b1"}, then]]


@given(streams=st.lists(st.lists(batch_specs, min_size=1, max_size=4), min_size=1, max_size=3))
@example(streams=_same_rows_twice(0))       # re-sent under another batch id: skipped, OK
@example(streams=_same_rows_twice(1))       # same ids, other content: a clash
# b1 stored nothing (its row came with b2), so b1 is free: new rows under it are stored,
# and other content for s1 under it is a clash, not a retry.
@example(streams=_id_of_a_batch_that_stored_nothing(
    {"ids": ["s0"], "batch_id": "b1", "corruption": "none", "seed": 0, "logits": False}))
@example(streams=_id_of_a_batch_that_stored_nothing(
    {"ids": ["s1"], "batch_id": "b1", "corruption": "none", "seed": 1, "logits": False}))
def test_ingest_streams_store_exactly_what_was_accepted(live, streams):
    srv, stub, health = live
    run_id = _new_run(stub)
    model = Model()
    for stream in streams:
        # The first message names the run; "other_run" in it would be a NOT_FOUND, later an INVALID_ARGUMENT.
        messages = [_build(run_id, spec) for spec in stream]
        expected_code, stored_before = grpc.StatusCode.OK, 0
        for i, spec in enumerate(stream):
            first_names_unknown_run = i == 0 and spec["corruption"] == "other_run"
            code = grpc.StatusCode.NOT_FOUND if first_names_unknown_run else model.apply(spec)
            if code != grpc.StatusCode.OK:
                expected_code = code
                break
            stored_before += 1
        code, details, response = _send(stub, messages)
        assert code == expected_code, details
        assert _stored_prefix(code, details, len(messages)) == stored_before
        if code != grpc.StatusCode.OK:
            field = FIELD_OF.get(stream[stored_before]["corruption"])
            if field:
                assert details.startswith(field), details
        else:
            assert response.total_rows == len(model.sample_ids)
    table = srv.store.read_rows("run", run_id, ["sample_id"])
    stored = table.column("sample_id").to_pylist() if table.num_columns else []
    assert stored == model.sample_ids
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id))
    assert run.num_rows == len(model.sample_ids)
    _assert_alive(health)


# ------------------------------------------------------------ arbitrary messages

junk_text = st.text(max_size=8)
junk_batches = st.builds(
    pb.IngestBatch,
    batch_id=junk_text,
    sample_ids=st.lists(junk_text, max_size=5),
    labels=st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), max_size=5),
    probabilities=st.binary(max_size=64),
    embeddings=st.binary(max_size=96),
    probabilities_are_logits=st.booleans(),
    uris=st.lists(junk_text, max_size=5),
    metadata=st.lists(st.builds(pb.Column, name=junk_text,
                                numbers=st.builds(pb.NumberValues, values=st.lists(st.floats(), max_size=5))),
                      max_size=2),
)


@SETTINGS
@given(batches=st.lists(junk_batches, min_size=1, max_size=3))
def test_arbitrary_ingest_messages_get_a_definite_status(live, batches):
    srv, stub, health = live
    run_id = _new_run(stub)
    batches[0].run_id = run_id
    code, details, response = _send(stub, batches)
    assert code in DEFINITE, (code, details)
    processed = batches[:_stored_prefix(code, details, len(batches))]
    seen, expected = set(), []
    for b in processed:
        if b.batch_id not in seen:
            seen.add(b.batch_id)
            expected.extend(b.sample_ids)
    assert stub.GetRun(pb.GetRunRequest(run_id=run_id)).num_rows == len(expected)
    _assert_alive(health)


@SETTINGS
@given(data=st.data())
def test_arbitrary_unary_requests_get_a_definite_status(live, data):
    srv, stub, health = live
    calls = [
        (stub.CreateRun, st.builds(pb.CreateRunRequest, name=junk_text, project=junk_text,
                                   class_names=st.lists(junk_text, max_size=4),
                                   embedding_dim=st.integers(-5, 70000))),
        (stub.CreatePool, st.builds(pb.CreatePoolRequest, name=junk_text, embedding_dim=st.integers(-5, 70000),
                                    num_classes=st.integers(-3, 200000))),
        (stub.ListRuns, st.builds(pb.ListRunsRequest, project=junk_text, page_size=st.integers(-5, 5000),
                                  page_token=junk_text)),
        (stub.GetJob, st.builds(pb.GetJobRequest, job_id=junk_text)),
        (stub.GetDiagnosis, st.builds(pb.GetDiagnosisRequest, diagnosis_id=junk_text, run_id=junk_text)),
        (stub.Diagnose, st.builds(pb.DiagnoseRequest, run_id=st.just(""),
                                  params=st.builds(pb.DiagnosisParams, fdr_alpha=st.floats(-2, 2),
                                                   min_cluster_size=st.integers(-5, 10 ** 9)))),
    ]
    method, requests = data.draw(st.sampled_from(calls))
    try:
        method(data.draw(requests), timeout=30)
        code = grpc.StatusCode.OK
    except grpc.RpcError as err:
        code = err.code()
    assert code in DEFINITE
    _assert_alive(health)
