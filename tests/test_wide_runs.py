"""Wide metadata (issue 13, defect 3): the column limit holds per run and per pool over
all batches, wide runs read back whole, and a diagnosis of one is cancellable while its
rows load. Real server on loopback."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest

from blindspots import Client
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.core.slice_finder import SliceFinder
from blindspots_server.storage import MAX_METADATA_COLUMNS
from blindspots_server.storage.rows import META_PREFIX, unify

from conftest import start_server

DIM = 4


def _batch(field: str, target_id: str, batch_id: str, n: int, first_col: int, cols: int,
           with_labels: bool) -> pb.IngestBatch:
    ids = [f"{batch_id}-{i}" for i in range(n)]
    msg = pb.IngestBatch(batch_id=batch_id, sample_ids=ids, embeddings=np.zeros((n, DIM), "<f4").tobytes(),
                         **{field: target_id})
    if with_labels:
        msg.labels.extend([i % 2 for i in range(n)])
        msg.probabilities = np.tile(np.array([[0.7, 0.3]], "<f4"), (n, 1)).tobytes()
    for c in range(first_col, first_col + cols):
        msg.metadata.append(pb.Column(name=f"c{c}", numbers=pb.NumberValues(values=[float(i % 7) for i in range(n)])))
    return msg


@pytest.mark.parametrize("target", ["run", "pool"])
def test_the_column_limit_holds_over_all_batches(client, target):
    if target == "run":
        obj = client.create_run("wide", class_names=["a", "b"], embedding_dim=DIM)
        field, call = "run_id", client.stub.IngestPredictions
    else:
        obj = client.create_pool("wide", embedding_dim=DIM)
        field, call = "pool_id", client.stub.IngestPool
    per_batch = 200                                    # each batch alone is within the limit
    for k in range(2):
        call(iter([_batch(field, obj.id, f"b{k}", 5, k * per_batch, per_batch, target == "run")]))
    with pytest.raises(grpc.RpcError) as info:
        call(iter([_batch(field, obj.id, "b2", 5, 2 * per_batch, per_batch, target == "run")]))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = info.value.details()
    assert details.startswith("metadata:") and f"limit is {MAX_METADATA_COLUMNS} per {target}" in details
    assert "adds 200 new column(s) to the 400" in details
    stored = obj.refresh().message
    assert stored.num_rows == 10 and len(stored.metadata_schema) == 2 * per_batch
    # Batches that reuse known columns, or add up to the limit, still go in.
    call(iter([_batch(field, obj.id, "b3", 5, 0, per_batch, target == "run")]))
    call(iter([_batch(field, obj.id, "b4", 5, 2 * per_batch, MAX_METADATA_COLUMNS - 2 * per_batch,
                      target == "run")]))
    assert len(obj.refresh().message.metadata_schema) == MAX_METADATA_COLUMNS


def test_unify_fills_missing_columns_with_typed_nulls_in_one_order():
    a = pa.table({"sample_id": ["a"], META_PREFIX + "x": [1.0]})
    b = pa.table({"sample_id": ["b"], META_PREFIX + "y": ["s"]})
    c = pa.table({META_PREFIX + "y": ["t"], "sample_id": ["c"], META_PREFIX + "x": [3.0]})
    out = unify([a, b, c], {"x": "number", "y": "string", "z": "timestamp"})
    assert out.column_names == ["sample_id", "m.x", "m.y", "m.z"]
    assert out.column("m.x").to_pylist() == [1.0, None, 3.0]
    assert out.column("m.y").to_pylist() == [None, "s", "t"]
    assert out.column("m.z").type == pa.timestamp("us") and out.column("m.z").null_count == 3


def test_a_run_at_the_column_limit_reads_back_whole(client, server):
    run = client.create_run("wide", class_names=["a", "b"], embedding_dim=DIM)
    per_batch = MAX_METADATA_COLUMNS // 8
    client.stub.IngestPredictions(iter([_batch("run_id", run.id, f"b{k}", 20, k * per_batch, per_batch, True)
                                        for k in range(8)]))
    table = server.store.read_rows("run", run.id)
    assert table.num_rows == 160 and len([c for c in table.column_names if c.startswith(META_PREFIX)]) == 512
    # Each batch holds its own 64 columns; the others read back as nulls.
    assert table.column(META_PREFIX + "c0").null_count == 140
    assert table.column(META_PREFIX + f"c{MAX_METADATA_COLUMNS - 1}").null_count == 140


def _many_files_run(client: Client, name: str):
    """A run of 400 batch files of 10 rows over 512 metadata columns: a diagnosis is still loading it
    for a second or more, and takes far longer to finish."""
    run = client.create_run(name, class_names=["a", "b"], embedding_dim=DIM)
    client.stub.IngestPredictions(iter([_batch("run_id", run.id, f"b{k}", 10, (k % 8) * 64, 64, True)
                                        for k in range(400)]))
    return run


def test_a_diagnosis_is_cancelled_between_the_files_it_loads(tmp_path):
    """CancelJob while 'loading predictions' had no effect until the whole run was read;
    the loader now checks between batch files: after the cancel at most the file being
    read finishes, and the job ends CANCELLED without a diagnosis."""
    srv = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run = _many_files_run(client, "many-files")
        job = client.stub.Diagnose(pb.DiagnoseRequest(run_id=run.id))
        seen: list[str] = []
        reply = None
        for update in client.stub.WatchJob(pb.GetJobRequest(job_id=job.id)):
            seen.append(update.stage)
            if reply is None and update.stage.startswith("loading predictions: batch file"):
                reply = client.stub.CancelJob(pb.GetJobRequest(job_id=job.id))
        assert reply is not None, "the loader reports each batch file it reads"
        final = client.stub.GetJob(pb.GetJobRequest(job_id=job.id))
        assert final.state == pb.Job.CANCELLED, pb.Job.State.Name(final.state)
        # The reply's stage is the file being read when the server set the cancel flag: at most
        # the next file (whose check passed just before the flag was set) is started after it,
        # however long the reply takes to arrive, and the analysis never starts.
        at_cancel = re.fullmatch(r"loading predictions: batch file (\d+) of 400", reply.stage)
        assert at_cancel, reply.stage
        files_read = [int(m.group(1)) for m in (re.search(r"batch file (\d+) of", s) for s in seen) if m]
        assert max(files_read) <= int(at_cancel.group(1)) + 1, (reply.stage, seen[-5:])
        assert not any(s.startswith(("reducing", "clustering", "slice search")) for s in seen), seen[-5:]
        assert client.stub.ListDiagnoses(pb.ListDiagnosesRequest(run_id=run.id)).diagnoses == []
    finally:
        client.close()
        srv.stop()


class _Stop(Exception):
    pass


def test_the_slice_search_checks_for_cancellation_inside_a_level():
    """Level 3 of a search over many columns was one long numpy pass with no progress
    call: a cancel waited for all of it. Now it reports (and can stop) between chunks."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, (1000, 48))
    errors = (rng.random(1000) < 0.2).astype(float)
    calls: list[str] = []

    def progress(fraction: float, stage: str) -> None:
        calls.append(stage)
        if calls.count("slice search level 3") == 3:
            raise _Stop()

    with pytest.raises(_Stop):
        SliceFinder(min_support=10).fit(codes, errors, progress=progress)
    assert calls.count("slice search level 3") == 3
    # And the chunked search finds what one pass found: the same slices, scores, tallies.
    a = SliceFinder(min_support=10).fit(codes, errors)
    assert a.top_slices_ and a.num_evaluated_ > 1000


def test_ctrl_c_in_the_cli_cancels_the_diagnosis_it_started(tmp_path):
    """`blindspots diagnose RUN` interrupted (SIGINT) while it waits: the job it started is
    cancelled on the server, not left running unseen; the CLI says so and exits 130."""
    srv = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run = _many_files_run(client, "interrupted")
        # SIGINT as a terminal delivers it, whatever this process inherited: a shell that starts
        # `make test` in the background (`make test &`) ignores SIGINT, and so would the CLI.
        cli = subprocess.Popen([str(Path(sys.executable).parent / "blindspots"), "diagnose", run.id, "--address",
                                f"127.0.0.1:{srv.port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        seen = b""
        while b"diagnose [" not in seen:             # the progress bar: the job exists and is being followed
            chunk = cli.stderr.read1(256)
            assert chunk, seen
            seen += chunk
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
        said = (seen + err).decode()
        assert cli.returncode == 130, (out, said)
        job_id = re.search(r"diagnosis job (job_\w+) cancelled on the server", said).group(1)
        # Cancelled, it ends at its next step; left running, it would not end within the 60 s.
        states = [j.state for j in client.stub.WatchJob(pb.GetJobRequest(job_id=job_id), timeout=60)]
        assert states[-1] == pb.Job.CANCELLED, states
        assert client.stub.ListDiagnoses(pb.ListDiagnosesRequest(run_id=run.id)).diagnoses == []
    finally:
        client.close()
        srv.stop()
