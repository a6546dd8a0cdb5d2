"""What OpenTelemetry tracing costs a call.

Two server subprocesses (``python -m blindspots_server``) over fresh data directories, one with
``--otlp-endpoint`` pointing at an OTLP/HTTP receiver on loopback (it decodes and counts the spans,
as a collector would), one without. Through the SDK, from a pipeline span (so every call carries
``traceparent``): ``--calls`` GetRun calls, and ``--suggests`` targeted Suggest calls of 100 picks from
a 20k-row pool. The two servers are measured alternately, in ``--rounds`` rounds, so that both see
the same machine; the figure to read is the ratio of median latencies, traced over untraced.

    .venv/bin/python bench/tracing_overhead.py
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from measure import ROOT, free_port, report, stop_process

sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "tests"))

from blindspots import Client  # noqa: E402
from conftest import OtlpReceiver  # noqa: E402


def _server(data: Path, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "blindspots_server", "--data-dir", str(data), "--port", str(port),
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=120)
    return proc, port


def _prepare(client: Client, rng) -> tuple:
    dim = 64
    centers = rng.normal(size=(8, dim)) * 3
    y = rng.integers(0, 8, 4000)
    x = (centers[y] + rng.normal(size=(4000, dim))).astype(np.float32)
    # A failure region: half of class 0's rows sit apart (a shift the model never learnt) and fail.
    apart = (y == 0) & (rng.random(4000) < 0.5)
    x[apart] += 4 * rng.normal(size=dim).astype(np.float32)
    wrong = rng.random(4000) < np.where(apart, 0.8, 0.05)
    pred = np.where(wrong, (y + 1) % 8, y)
    probs = np.full((4000, 8), 0.02)
    probs[np.arange(4000), pred] = 0.86
    run = client.create_run("bench", class_names=[str(i) for i in range(8)], embedding_dim=dim)
    run.log_predictions([f"t{i}" for i in range(4000)], x, labels=y, probabilities=probs, progress=False)
    pool_y = rng.integers(0, 8, 20_000)
    pool = client.create_pool("pool", embedding_dim=dim, num_classes=8)
    pool.add([f"p{i}" for i in range(20_000)], (centers[pool_y] + rng.normal(size=(20_000, dim))).astype(np.float32),
             probabilities=rng.dirichlet(np.ones(8), 20_000), progress=False)
    run.diagnose(progress=False, seed=1)
    return run, pool


def run(args) -> dict:
    from opentelemetry.sdk.trace import TracerProvider
    receiver = OtlpReceiver()
    tracer = TracerProvider().get_tracer("bench")
    ways = {"untraced": [], "traced": ["--otlp-endpoint", receiver.endpoint]}
    times: dict[str, dict[str, list[float]]] = {w: {"GetRun": [], "Suggest": []} for w in ways}
    with tempfile.TemporaryDirectory(prefix="bs-tracing-") as tmp:
        servers = {w: _server(Path(tmp) / w, extra) for w, extra in ways.items()}
        try:
            clients = {w: Client(f"127.0.0.1:{port}", timeout=300) for w, (_, port) in servers.items()}
            prepared = {w: _prepare(c, np.random.default_rng(0)) for w, c in clients.items()}
            with tracer.start_as_current_span("pipeline"):
                for _ in range(args.rounds):
                    for way, client in clients.items():
                        r, pool = prepared[way]
                        for _ in range(args.calls // args.rounds):
                            t0 = time.perf_counter()
                            client.get_run(r.id)
                            times[way]["GetRun"].append(time.perf_counter() - t0)
                        for _ in range(max(1, args.suggests // args.rounds)):
                            t0 = time.perf_counter()
                            r.suggest(pool, budget=100, allow_repeats=True, progress=False)
                            times[way]["Suggest"].append(time.perf_counter() - t0)
            for c in clients.values():
                c.close()
        finally:
            for proc, _ in servers.values():
                stop_process(proc)
    out = {"calls": args.calls, "suggests": args.suggests, "rounds": args.rounds, "spans_received": len(receiver.spans)}
    for call in ("GetRun", "Suggest"):
        med = {w: statistics.median(times[w][call]) for w in ways}
        out[call] = {"untraced_ms": round(med["untraced"] * 1000, 3), "traced_ms": round(med["traced"] * 1000, 3),
                     "ratio": round(med["traced"] / med["untraced"], 3), "n": len(times["traced"][call])}
    receiver.close()
    return out


def fragment(r: dict) -> str:
    rows = [f"| {c} | {r[c]['n']} | {r[c]['untraced_ms']} | {r[c]['traced_ms']} | {r[c]['ratio']} |"
            for c in ("GetRun", "Suggest")]
    return "\n".join([
        "**What OpenTelemetry tracing costs a call** (two server subprocesses measured alternately, "
        f"{r['rounds']} rounds; every call carries a pipeline span's traceparent; the traced server exports "
        "to an OTLP/HTTP receiver on loopback)", "",
        "| call | calls per way | median ms, untraced | median ms, traced | traced / untraced |",
        "|---|---:|---:|---:|---:|", *rows, "",
        f"Spans received: {r['spans_received']} (the traced server's calls and jobs; the untraced one sends none).",
    ])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--suggests", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--write", action="store_true", help="write bench/results/tracing_overhead.md")
    args = ap.parse_args(argv)
    return report("tracing_overhead", run(args), fragment, args.write)


if __name__ == "__main__":
    main()
