"""Load test on loopback: concurrent ingestion while diagnoses and suggestions run.

    .venv/bin/python bench/load_test.py [--seconds 20] [--ingest-clients 16] [--rows-per-batch 500]

Starts `python -m blindspots_server` on a temporary store (or uses --address),
seeds a run and a pool, then for a fixed time runs N ingest clients (one batch
per call, acknowledged durably), one client diagnosing in a loop and one
suggesting in a loop. Reports throughput, p50/p99 latency per call kind and the
error count, and writes bench/results/load.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import grpc
import numpy as np

from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc

DIM, CLASSES = 64, 5
RESULTS = Path(__file__).parent / "results" / "load.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(rng, prefix: str, n: int, labels: bool = True) -> dict:
    emb = rng.normal(size=(n, DIM))
    logits = rng.normal(size=(n, CLASSES)) * 2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    out = dict(sample_ids=[f"{prefix}{i}" for i in range(n)],
               probabilities=p.astype("<f4").tobytes(),
               embeddings=emb.astype("<f4").tobytes(),
               metadata=[pb.Column(name="region", strings=pb.StringValues(
                   values=rng.choice(["north", "south", "east", "west"], n).tolist()))])
    if labels:
        # The model is right except in one region of embedding space (and 3% noise): a blind spot to find.
        pred = p.argmax(1)
        wrong = (emb[:, 0] > 1.2) | (rng.random(n) < 0.03)
        out["labels"] = np.where(wrong, (pred + 1) % CLASSES, pred).tolist()
    return out


class Recorder:
    def __init__(self):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.rows = 0
        self.lock = threading.Lock()

    def ok(self, kind: str, seconds: float, rows: int = 0) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.rows += rows

    def error(self, kind: str, err: grpc.RpcError) -> None:
        with self.lock:
            self.errors[kind].append(f"{err.code().name}: {err.details()}")


def _timed(rec: Recorder, kind: str, fn, rows: int = 0) -> bool:
    start = time.perf_counter()
    try:
        fn()
    except grpc.RpcError as err:
        rec.error(kind, err)
        return False
    rec.ok(kind, time.perf_counter() - start, rows)
    return True


def run_load(address: str, seconds: float, ingest_clients: int, rows_per_batch: int) -> dict:
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20),
                                                      ("grpc.max_receive_message_length", 64 << 20)])
    stub = pb_grpc.BlindspotsStub(channel)
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(CLASSES)]
    seed_run = stub.CreateRun(pb.CreateRunRequest(name="load-seed", class_names=names, embedding_dim=DIM))
    stub.IngestPredictions(iter([pb.IngestBatch(run_id=seed_run.id, batch_id="seed",
                                                **_rows(rng, "t", 5000))]))
    pool = stub.CreatePool(pb.CreatePoolRequest(name="load-pool", embedding_dim=DIM, num_classes=CLASSES))
    stub.IngestPool(iter([pb.IngestBatch(pool_id=pool.id, batch_id=f"p{k}", **_rows(rng, f"p{k}-", 10000, False))
                          for k in range(2)]))
    job = stub.Diagnose(pb.DiagnoseRequest(run_id=seed_run.id))
    for job in stub.WatchJob(pb.GetJobRequest(job_id=job.id)):
        pass
    ingest_runs = [stub.CreateRun(pb.CreateRunRequest(name=f"load-{i}", class_names=names, embedding_dim=DIM)).id
                   for i in range(4)]
    # Payloads are built before the clock starts so the clients measure the server, not numpy.
    payload = _rows(rng, "x", rows_per_batch)

    rec = Recorder()
    stop = threading.Event()

    def ingest(worker: int) -> None:
        k = 0
        while not stop.is_set():
            run_id = ingest_runs[worker % len(ingest_runs)]
            ids = [f"w{worker}-{k}-{i}" for i in range(rows_per_batch)]
            msg = pb.IngestBatch(run_id=run_id, batch_id=f"w{worker}-{k}", **{**payload, "sample_ids": ids})
            _timed(rec, "ingest batch", lambda: stub.IngestPredictions(iter([msg]), timeout=60), rows_per_batch)
            k += 1

    def diagnose() -> None:
        while not stop.is_set():
            def one():
                job = stub.Diagnose(pb.DiagnoseRequest(run_id=seed_run.id), timeout=60)
                last = job
                for last in stub.WatchJob(pb.GetJobRequest(job_id=job.id), timeout=300):
                    pass
                if last.state != pb.Job.SUCCEEDED:
                    raise RuntimeError(f"diagnosis ended {pb.Job.State.Name(last.state)}: {last.error}")
            try:
                _timed(rec, "diagnose (job end to end)", one)
            except RuntimeError as exc:
                with rec.lock:
                    rec.errors["diagnose (job end to end)"].append(str(exc))

    def suggest() -> None:
        while not stop.is_set():
            request = pb.SuggestRequest(run_id=seed_run.id, pool_id=pool.id, budget=200, allow_repeats=True)
            _timed(rec, "suggest targeted (stream)", lambda: list(stub.Suggest(request, timeout=120)))

    def probe() -> None:
        # How long a cheap call waits while everything else runs.
        while not stop.is_set():
            _timed(rec, "get run", lambda: stub.GetRun(pb.GetRunRequest(run_id=seed_run.id), timeout=30))
            stop.wait(0.05)

    threads = ([threading.Thread(target=ingest, args=(i,)) for i in range(ingest_clients)]
               + [threading.Thread(target=diagnose), threading.Thread(target=suggest), threading.Thread(target=probe)])
    started = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    stored = sum(stub.GetRun(pb.GetRunRequest(run_id=r)).num_rows for r in ingest_runs)
    channel.close()
    return dict(rec=rec, elapsed=elapsed, stored=stored)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def _repo_relative(path: str) -> str:
    """A script path as the repository names it (results files hold no machine paths)."""
    resolved = Path(path).resolve()
    root = Path(__file__).resolve().parents[1]
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else Path(path).name


def report(result: dict, args) -> str:
    rec: Recorder = result["rec"]
    elapsed = result["elapsed"]
    n_errors = sum(len(v) for v in rec.errors.values())
    lines = [
        "# Load test (loopback)",
        "",
        f"`{' '.join(['python', _repo_relative(sys.argv[0]), *sys.argv[1:]])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; server and "
        "clients on the same machine (the clients' Python threads share its CPUs).",
        f"Load: {args.ingest_clients} ingest clients ({args.rows_per_batch} rows x {DIM}-d embeddings per batch, "
        "one batch per call, each acknowledged after fsync), 1 client diagnosing a 5,000-row run in a loop, "
        "1 client asking for 200 targeted suggestions from a 20,000-row pool in a loop, 1 client probing GetRun; "
        f"{elapsed:.1f} s.",
        "",
        f"Ingest throughput: **{rec.rows / elapsed:,.0f} rows/s** "
        f"({len(rec.latency['ingest batch']) / elapsed:,.1f} batches/s); rows stored at the end: "
        f"{result['stored']:,} (acknowledged: {rec.rows:,}). Errors: **{n_errors}**.",
        "",
        "| call | completed | per s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, values in rec.latency.items():
        lines.append(f"| {kind} | {len(values)} | {len(values) / elapsed:.2f} | {_pct(values, 50):.1f} | "
                     f"{_pct(values, 99):.1f} |")
    for kind, errs in rec.errors.items():
        lines.append(f"\nErrors in {kind}: {len(errs)}, e.g. `{errs[0]}`")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ingest-clients", type=int, default=16)
    parser.add_argument("--rows-per-batch", type=int, default=500)
    parser.add_argument("--address", default="", help="use a running server instead of starting one")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    server = None
    with tempfile.TemporaryDirectory() as tmp:
        address = args.address
        if not address:
            port = _free_port()
            server = subprocess.Popen([sys.executable, "-m", "blindspots_server", "--data-dir", f"{tmp}/data",
                                       "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            address = f"127.0.0.1:{port}"
            grpc.channel_ready_future(grpc.insecure_channel(address)).result(timeout=120)
        try:
            result = run_load(address, args.seconds, args.ingest_clients, args.rows_per_batch)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=60)
    text = report(result, args)
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    return 0 if not result["rec"].errors and result["stored"] == result["rec"].rows else 1


if __name__ == "__main__":
    sys.exit(main())
