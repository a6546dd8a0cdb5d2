"""A full disk (issue 13, defect 8): RESOURCE_EXHAUSTED saying so, nothing half-written,
the data stored before intact, the server up, and writes work again once space is freed.
The disk is a real 4 MiB tmpfs; mounting one needs root, so elsewhere the test skips."""
from __future__ import annotations

import os
import shutil
import subprocess

import grpc
import numpy as np
import pytest

from blindspots import Client
from blindspots.v1 import blindspots_pb2 as pb

from conftest import start_server

DIM = 64


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("the full-disk test mounts a 4 MiB tmpfs, which needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the full-disk test needs one")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path) -> None:
    """Write a file until the disk has no byte left."""
    chunk = b"\0" * (64 << 10)
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError:
                break
        while True:                      # the last partial block too
            try:
                fh.write(b"\0" * 512)
            except OSError:
                break


def _rows(start: int, n: int):
    rng = np.random.default_rng(start)
    p = rng.uniform(0.05, 0.95, n)
    return ([f"s{i}" for i in range(start, start + n)], rng.integers(0, 2, n), np.stack([p, 1 - p], axis=1),
            rng.normal(size=(n, DIM)))


def test_a_full_disk_is_resource_exhausted_and_nothing_is_half_written(small_disk):
    data = small_disk / "data"
    srv = start_server(data)
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=60)
    try:
        run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
        ids, labels, probs, emb = _rows(0, 300)
        run.log_predictions(ids, labels=labels, probabilities=probs, embeddings=emb, batch_size=100,
                            progress=False)
        filler = small_disk / "filler"
        _fill(filler)

        more = _rows(300, 2000)            # ~0.5 MB of embeddings: cannot fit
        with pytest.raises(grpc.RpcError) as info:
            client.stub.IngestPredictions(iter([pb.IngestBatch(
                run_id=run.id, batch_id="more", sample_ids=more[0], labels=more[1].tolist(),
                probabilities=more[2].astype("<f4").tobytes(), embeddings=more[3].astype("<f4").tobytes())]))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
        assert "disk is full" in info.value.details() and str(small_disk) not in info.value.details()
        assert list((data / "tmp").iterdir()) == []                      # no partial file left
        assert client.get_run(run.id).message.num_rows == 300           # the server is up, data intact
        stored = srv.store.read_rows("run", run.id, ["sample_id"]).column("sample_id").to_pylist()
        assert stored == ids
        # A catalog write on the full disk is RESOURCE_EXHAUSTED too (or fits in SQLite's free pages).
        try:
            client.stub.CreateRun(pb.CreateRunRequest(name="x", class_names=["a", "b"], embedding_dim=DIM))
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()

        filler.unlink()                     # the operator frees space; the pipeline re-sends
        summary = run.log_predictions(more[0], labels=more[1], probabilities=more[2], embeddings=more[3],
                                      progress=False)
        assert summary.rows_stored == 2000 and summary.total_rows == 2300
    finally:
        client.close()
        srv.stop()
    reopened = start_server(data)           # and everything acknowledged is there after a restart
    try:
        assert reopened.store.get_run(run.id).num_rows == 2300
        assert reopened.store.read_rows("run", run.id, ["sample_id"]).num_rows == 2300
    finally:
        reopened.stop()


def test_every_backends_out_of_space_error_is_resource_exhausted():
    """The tmpfs test exercises the file system and SQLite for real; PostgreSQL's disk_full
    (SQLSTATE 53100) is classified by the same rule."""
    import errno
    import sqlite3

    from blindspots_server.server.errors import DISK_FULL, client_message, status_for

    cases = [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "Disk quota exceeded")]
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    cases.append(full)
    psycopg = pytest.importorskip("psycopg")
    cases.append(psycopg.errors.DiskFull("could not extend file"))
    for exc in cases:
        assert status_for(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED and client_message(exc) == DISK_FULL
    assert status_for(OSError(errno.EACCES, "Permission denied")) == grpc.StatusCode.INTERNAL
