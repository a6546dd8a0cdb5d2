"""Two server processes on one PostgreSQL catalog and one file root: any replica serves any run,
and SIGKILLing the replica that runs a diagnosis lets the other one finish it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import psycopg

from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc

from conftest import free_port

LEASE_S = 3
DIM = 16


class Replica:
    def __init__(self, name: str, store: str, files: Path, log: Path):
        self.name, self.port = name, free_port()
        env = {**os.environ, "BLINDSPOTS_JOB_LEASE_S": str(LEASE_S)}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "blindspots_server", "--store", store, "--files",
                                          str(files), "--port", str(self.port)], stdout=out,
                                         stderr=subprocess.STDOUT, env=env)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=90)
        self.stub = pb_grpc.BlindspotsStub(self.channel)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _batch(rng, ids: list[str], run_id: str = "", pool_id: str = "") -> pb.IngestBatch:
    n = len(ids)
    p = rng.uniform(0.05, 0.95, n)
    # Two blobs where the labels are noisy, so that the diagnosis has real work to do.
    centers = rng.integers(0, 4, n)
    emb = rng.normal(size=(n, DIM)) + np.eye(4, DIM)[centers] * 4
    batch = pb.IngestBatch(batch_id=f"b-{ids[0]}", sample_ids=ids, embeddings=emb.astype("<f4").tobytes(),
                           probabilities=np.stack([p, 1 - p], 1).astype("<f4").tobytes())
    if run_id:
        batch.run_id = run_id
        batch.labels.extend(np.where(centers < 2, (p < 0.5).astype(int), rng.integers(0, 2, n)).tolist())
    else:
        batch.pool_id = pool_id
    return batch


def _job_row(store: str, job_id: str) -> tuple:
    with psycopg.connect(store) as conn:
        return conn.execute("SELECT state, owner, attempts FROM jobs WHERE id=%s", (job_id,)).fetchone()


def _wait_running(store: str, job_id: str, a: Replica, b: Replica) -> tuple[Replica, Replica]:
    """Once the job is RUNNING: (the replica running it, the other one)."""
    deadline = time.time() + 60
    while (row := _job_row(store, job_id))[0] != "RUNNING":
        assert row[0] == "PENDING" and time.time() < deadline, row
        time.sleep(0.02)
    owner_pid = int(row[1].split(":")[1])
    assert owner_pid in (a.proc.pid, b.proc.pid), row
    return (a, b) if owner_pid == a.proc.pid else (b, a)


def test_two_replicas_share_runs_and_one_finishes_the_job_the_other_was_killed_in(postgres_uri, tmp_path):
    files = tmp_path / "files"
    a = Replica("a", postgres_uri, files, tmp_path / "a.log")
    b = Replica("b", postgres_uri, files, tmp_path / "b.log")
    rng = np.random.default_rng(3)
    try:
        # Any replica serves any run: written through a, read through b.
        run_id = a.stub.CreateRun(pb.CreateRunRequest(name="r", class_names=["x", "y"], embedding_dim=DIM)).id
        n = 30_000
        a.stub.IngestPredictions(iter([_batch(rng, [f"s{i}" for i in range(k, k + 10_000)], run_id=run_id)
                                       for k in range(0, n, 10_000)]))
        assert b.stub.GetRun(pb.GetRunRequest(run_id=run_id)).num_rows == n

        # The pool's rows as b caches them must follow batches a stores later (no stale row cache).
        pool_id = b.stub.CreatePool(pb.CreatePoolRequest(name="p", embedding_dim=DIM, num_classes=2)).id
        a.stub.IngestPool(iter([_batch(rng, [f"p{i}" for i in range(200)], pool_id=pool_id)]))
        first = [c.sample_id for r in b.stub.Suggest(pb.SuggestRequest(run_id=run_id, pool_id=pool_id, budget=150,
                                                                        strategy="entropy"))
                 for c in r.candidates.candidates]
        a.stub.IngestPool(iter([_batch(rng, [f"q{i}" for i in range(100)], pool_id=pool_id)]))
        rest = [c.sample_id for r in b.stub.Suggest(pb.SuggestRequest(run_id=run_id, pool_id=pool_id, budget=150,
                                                                       strategy="entropy"))
                for c in r.candidates.candidates]
        assert len(first) == 150 and len(rest) == 150
        assert {f"q{i}" for i in range(100)} <= set(rest), "b served a pool without the rows a added"

        # A cancel asked of the replica that does not run the job reaches the one that does, by
        # its lease heartbeat (every LEASE_S / 3). The runner is paused while the cancel is asked,
        # so that the heartbeat is due when it resumes with most of the diagnosis still ahead:
        # without the pause a machine faster than this one could finish the job first.
        job = a.stub.Diagnose(pb.DiagnoseRequest(run_id=run_id))
        runner, other = _wait_running(postgres_uri, job.id, a, b)
        runner.proc.send_signal(signal.SIGSTOP)
        try:
            asked = other.stub.CancelJob.future(pb.GetJobRequest(job_id=job.id))
            asked.result(timeout=LEASE_S / 2)   # may wait on a row the paused runner holds: resumed below
            time.sleep(LEASE_S / 3)             # the runner's heartbeat is due on resume
        except grpc.FutureTimeoutError:
            pass
        finally:
            runner.proc.send_signal(signal.SIGCONT)
        assert asked.result(timeout=60).state in (pb.Job.RUNNING, pb.Job.CANCELLED)
        states = [j.state for j in other.stub.WatchJob(pb.GetJobRequest(job_id=job.id), timeout=120)]
        assert states[-1] == pb.Job.CANCELLED, states
        assert runner.stub.GetJob(pb.GetJobRequest(job_id=job.id)).state == pb.Job.CANCELLED

        # Diagnose through a; kill whichever replica claimed the job while it runs.
        job = a.stub.Diagnose(pb.DiagnoseRequest(run_id=run_id))
        victim, survivor = _wait_running(postgres_uri, job.id, a, b)
        victim.kill()
        state, _, attempts = _job_row(postgres_uri, job.id)
        assert state == "RUNNING" and attempts == 1, "the job ended before the kill: the test proves nothing"

        # The client, on the surviving replica, sees the job through to SUCCEEDED.
        states = [j.state for j in survivor.stub.WatchJob(pb.GetJobRequest(job_id=job.id), timeout=300)]
        assert states[-1] == pb.Job.SUCCEEDED, states
        done = survivor.stub.GetJob(pb.GetJobRequest(job_id=job.id))
        state, owner, attempts = _job_row(postgres_uri, job.id)
        assert int(owner.split(":")[1]) == survivor.proc.pid and attempts == 2
        diagnosis = survivor.stub.GetDiagnosis(pb.GetDiagnosisRequest(diagnosis_id=done.result_id))
        assert diagnosis.num_samples == n and diagnosis.run_id == run_id
    finally:
        a.stop()
        b.stop()
