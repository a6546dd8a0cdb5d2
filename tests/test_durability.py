"""Crash durability: SIGKILL the server during concurrent ingestion, restart, check the store.

Every batch the server acknowledged must be there after each restart, no row
twice, and the store must open cleanly (no debris, a sound catalog).
"""
from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc
from blindspots_server.storage import EmbeddedStore
from conftest import free_port

KILL_CYCLES = 4
WRITERS = 6                 # client threads, three per run
DIM = 16
ROWS_PER_BATCH = 25
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class ServerProcess:
    """`python -m blindspots_server` on a fixed port and data directory."""

    def __init__(self, data_dir: Path, port: int, log: Path):
        self.data_dir, self.port, self.log = data_dir, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            command = [sys.executable, "-m", "blindspots_server", "--data-dir", str(self.data_dir),
                       "--port", str(self.port)]
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=90)
        finally:
            channel.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Writer(threading.Thread):
    """Streams two batches per call; retries a failed call with the same batch ids, as the SDK does."""

    def __init__(self, port: int, run_id: str, name: str, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.port, self.run_id, self.stop_event = port, run_id, stop
        self.acked: list[str] = []            # sample ids of acknowledged batches
        self.sent: set[str] = set()
        self.retries = 0
        self.failure: BaseException | None = None

    def _batch(self, k: int) -> pb.IngestBatch:
        ids = [f"{self.name}-{k}-{j}" for j in range(ROWS_PER_BATCH)]
        self.sent.update(ids)
        rng = np.random.default_rng(abs(hash((self.name, k))) % 2 ** 32)
        p = rng.uniform(0.05, 0.95, ROWS_PER_BATCH)
        return pb.IngestBatch(run_id=self.run_id, batch_id=f"{self.name}-b{k}", sample_ids=ids,
                              labels=rng.integers(0, 2, ROWS_PER_BATCH).tolist(),
                              probabilities=np.stack([p, 1 - p], 1).astype("<f4").tobytes(),
                              embeddings=rng.normal(size=(ROWS_PER_BATCH, DIM)).astype("<f4").tobytes(),
                              metadata=[pb.Column(name="writer", strings=pb.StringValues(
                                  values=[self.name] * ROWS_PER_BATCH))])

    def run(self) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        stub = pb_grpc.BlindspotsStub(channel)
        k = 0
        try:
            while not self.stop_event.is_set():
                batches = [self._batch(k), self._batch(k + 1)]
                while True:
                    try:
                        stub.IngestPredictions(iter(batches), timeout=10, wait_for_ready=True)
                        break
                    except grpc.RpcError as err:
                        if err.code() not in TRANSIENT:
                            raise
                        self.retries += 1
                        self.stop_event.wait(0.05)
                for b in batches:
                    self.acked.extend(b.sample_ids)
                k += 2
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            channel.close()


def _check_store(data_dir: Path, runs: list[str], writers: list[Writer]) -> int:
    store = EmbeddedStore(data_dir)            # runs crash recovery, as a restart does
    try:
        stored: Counter[str] = Counter()
        for run_id in runs:
            table = store.read_rows("run", run_id, ["sample_id", "embedding"])
            ids = table.column("sample_id").to_pylist()
            assert store.get_run(run_id).num_rows == len(ids)
            stored.update(ids)
        twice = [i for i, c in stored.items() if c > 1]
        assert not twice, f"rows stored twice: {twice[:5]}"
        for w in writers:
            missing = [i for i in w.acked if i not in stored]
            assert not missing, f"{len(missing)} acknowledged rows lost, e.g. {missing[:3]}"
        assert set(stored) <= set().union(*(w.sent for w in writers))
        # Nothing left over: no temporary files, no Parquet file the catalog does not know.
        assert list((data_dir / "tmp").iterdir()) == []
        files = {str(p.relative_to(data_dir)) for p in (data_dir / "runs").glob("*/*.parquet")}
        known = {r[0] for r in store._query("SELECT file FROM batches")}
        assert files == known
        return sum(stored.values())
    finally:
        store.close()


def test_acknowledged_rows_survive_sigkill_during_concurrent_ingest(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    server = ServerProcess(data_dir, port, tmp_path / "server.log")
    server.start()
    stop = threading.Event()
    writers: list[Writer] = []
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.BlindspotsStub(channel)
        runs = [stub.CreateRun(pb.CreateRunRequest(name=f"crash-{i}", class_names=["a", "b"],
                                                   embedding_dim=DIM)).id for i in range(2)]
        channel.close()
        writers = [Writer(port, runs[i % 2], f"w{i}", stop) for i in range(WRITERS)]
        for w in writers:
            w.start()
        rng = random.Random(1234)
        acked_at_kill = []
        for cycle in range(KILL_CYCLES):
            before = sum(len(w.acked) for w in writers)
            # Kill once some new batches were acknowledged, at a random moment after that.
            while sum(len(w.acked) for w in writers) < before + 4 * ROWS_PER_BATCH:
                if any(w.failure for w in writers):
                    break
                stop.wait(0.05)
            stop.wait(rng.uniform(0.0, 0.6))
            server.kill()
            acked_at_kill.append(sum(len(w.acked) for w in writers))
            server.start()
        stop.set()
        for w in writers:
            w.join(timeout=60)
        for w in writers:
            assert w.failure is None, f"{w.name}: {w.failure!r}"
        assert sum(w.retries for w in writers) > 0, "the kills should have interrupted some calls"
        # The server that is still up after the last restart answers with the same counts.
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.BlindspotsStub(channel)
        served = sum(stub.GetRun(pb.GetRunRequest(run_id=r)).num_rows for r in runs)
        channel.close()
    finally:
        stop.set()
        server.stop()
    total = _check_store(data_dir, runs, writers)
    assert total == served >= sum(len(w.acked) for w in writers) > 0
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    print(f"{KILL_CYCLES} SIGKILL cycles, {len(writers)} writers, {total} rows stored, "
          f"acknowledged at each kill: {acked_at_kill}")


def test_jobs_interrupted_by_a_crash_end_failed_after_restart(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    server = ServerProcess(data_dir, port, tmp_path / "server.log")
    server.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.BlindspotsStub(channel)
        run_id = stub.CreateRun(pb.CreateRunRequest(name="job", class_names=["a", "b"], embedding_dim=DIM)).id
        rng = np.random.default_rng(0)
        n = 4000
        p = rng.uniform(0.05, 0.95, n)
        stub.IngestPredictions(iter([pb.IngestBatch(
            run_id=run_id, batch_id="b", sample_ids=[f"s{i}" for i in range(n)],
            labels=rng.integers(0, 2, n).tolist(), probabilities=np.stack([p, 1 - p], 1).astype("<f4").tobytes(),
            embeddings=rng.normal(size=(n, DIM)).astype("<f4").tobytes())]))
        job = stub.Diagnose(pb.DiagnoseRequest(run_id=run_id))
        channel.close()
        server.kill()
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.BlindspotsStub(channel)
        after = stub.GetJob(pb.GetJobRequest(job_id=job.id))
        # Either it finished before the kill, or it is reported failed with a reason — never stuck RUNNING.
        assert after.state in (pb.Job.SUCCEEDED, pb.Job.FAILED)
        if after.state == pb.Job.FAILED:
            assert "server stopped" in after.error
        assert stub.GetRun(pb.GetRunRequest(run_id=run_id)).num_rows == n
        channel.close()
    finally:
        server.stop()
