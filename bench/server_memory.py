"""Where the server's memory goes, step by step, and how diagnose grows with the test set.

One server subprocess (``python -m blindspots_server``) over a fresh data
directory; through the SDK: ingest n test rows and p pool rows (the listings
scenario, 128-d, generated and sent one chunk of at most 1M rows at a time so
the driver stays small), wait for the pool's index build, diagnose, suggest
1000 (``targeted``, or ``--strategy``; first and warm call). Before each step the server's peak
RSS is reset (``/proc/PID/clear_refs`` = 5) and read back after it (VmHWM), so
each row says which step needs the memory; "peak" is the largest of them.

``--compute in-process,ray`` diagnoses (and suggests) once per way on the same
stored rows: after the in-process server (the peer) a second server process
starts on the same data directory with ``--ray-address`` of a throw-away local
Ray cluster (two nodes, one CPU each), where the diagnosis's row-level kNN
search runs as Ray tasks. Steps of the later servers are prefixed with the way.
``--code-root`` runs the server from another checkout (e.g. an older commit)
with the same driver, for before/after rows from one command. ``--compute ray``
alone ingests into the Ray server, so its "index build" row is the pool index
built in Ray shards (from the pool's row files, or, before issue 14, from rows
the server read and sent).

    .venv/bin/python bench/server_memory.py --test-rows 1000000 --pool-rows 1000000
    .venv/bin/python bench/server_memory.py --test-rows 5000000 --pool-rows 0 --steps diagnose
    .venv/bin/python bench/server_memory.py --test-rows 0 --pool-rows 1000000 --diagnose-reps 0 --steps index --compute ray

Prints one JSON line per run (``--json-out`` appends it to a file as well);
``--write`` turns every run in that file into bench/results/server_memory.md
(per-step peaks per code version, and diagnose time against test rows with its
log-log slope per way).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from measure import ROOT, free_port, stop_process, write_fragment

sys.path.insert(0, str(ROOT / "service"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from blindspots_scenarios.listings import CLASS_NAMES, make_scenario, train_model  # noqa: E402

BUDGET = 1000
CHUNK = 1_000_000


def _status(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _wait_index(metrics_port: int, pool_id: str, rows: int, timeout_s: float = 1800) -> None:
    """Until the server's /metrics says the pool's index holds ``rows`` rows (its index build job has
    finished). Not the server's CPU going quiet: with Ray the server waits idle while the shards build."""
    from urllib.request import urlopen
    line = f'blindspots_pool_index_rows{{pool_id="{pool_id}"}} '
    t_end = time.time() + timeout_s
    while time.time() < t_end:
        with urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
            for text in page.read().decode().splitlines():
                if text.startswith(line) and float(text[len(line):]) >= rows:
                    return
        time.sleep(0.5)
    raise TimeoutError(f"the index of pool {pool_id} did not reach {rows} rows in {timeout_s:.0f} s")


class Server:
    def __init__(self, code_root: Path, data_dir: str, ray_address: str = ""):
        self.code_root, self.data_dir, self.ray_address = code_root, data_dir, ray_address

    def __enter__(self) -> "Server":
        env = dict(os.environ, BLINDSPOTS_LOG_LEVEL="WARNING")
        env["PYTHONPATH"] = os.pathsep.join([str(self.code_root / "service"),
                                             str(self.code_root / "clients" / "python")])
        port, self.metrics_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "blindspots_server", "--data-dir", self.data_dir, "--port", str(port),
               "--metrics-port", str(self.metrics_port)]
        if self.ray_address:
            cmd += ["--ray-address", self.ray_address]
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log)
        from blindspots import Client
        self.client = Client(f"127.0.0.1:{port}")
        self.client.wait_ready(timeout=120)
        return self

    def warnings(self) -> list[str]:
        """The server's log lines at WARNING and above so far (e.g. a fallback it took)."""
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().splitlines() if "WARNING" in line or "ERROR" in line]
        self.log.seek(0, os.SEEK_END)
        return lines

    def __exit__(self, *exc) -> None:
        self.client.close()
        stop_process(self.proc)
        if exc[0] is not None:
            self.log.seek(0)
            print(self.log.read()[-4000:], file=sys.stderr)
        self.log.close()


def _chunks(total: int, seed: int, which: str):
    """The listings scenario's test or pool split, ``CHUNK`` rows at a time (distinct ids per chunk)."""
    for i, start in enumerate(range(0, total, CHUNK)):
        n = min(CHUNK, total - start)
        s = make_scenario(n_train=10, n_test=n if which == "test" else 10, n_pool=n if which == "pool" else 10,
                          seed=seed + i)
        split = s.test if which == "test" else s.pool
        ids = np.array([f"c{i}-{x}" for x in split.ids])
        yield ids, split


def run(args) -> dict:
    code_root = Path(args.code_root).resolve() if args.code_root else ROOT
    model = train_model(make_scenario(n_train=8000, n_test=10, n_pool=10, seed=0).train, seed=0)
    ways = [w for w in args.compute.split(",") if w]
    out: dict = {"code": subprocess.run(["git", "-C", str(code_root), "describe", "--always", "--dirty"],
                                        capture_output=True, text=True).stdout.strip(),
                 "test_rows": args.test_rows, "pool_rows": args.pool_rows, "compute": ways, "steps": {},
                 "strategy": args.strategy}
    with tempfile.TemporaryDirectory(prefix="blindspots-mem-") as tmp:
        data_dir = os.path.join(tmp, "data")
        ids = None
        for i, way in enumerate(ways):
            with ExitStack() as stack:
                address = ""
                if way == "ray":
                    from blindspots_server.ray_cluster import local_cluster
                    address = stack.enter_context(local_cluster(nodes=2, cpus_per_node=1,
                                                                object_store_mb=args.object_store_mb))
                server = stack.enter_context(Server(code_root, data_dir, address))
                ids = _session(args, model, server, out, ids, prefix="" if i == 0 else f"{way}: ")
                out.setdefault("server_warnings", {})[way] = server.warnings()
    for way in ways:
        prefix = "" if way == ways[0] else f"{way}: "
        mine = {k[len(prefix):]: v for k, v in out["steps"].items()
                if (k.startswith(prefix) if prefix else ": " not in k)}
        diag = [s["s"] for k, s in mine.items() if k.startswith("diagnose")]
        out[way] = {"peak_rss_mb": max(s["peak_rss_mb"] for s in mine.values()),
                    "diagnose_s": float(np.median(diag)) if diag else None}
    return out


def _session(args, model, server: "Server", out: dict, ids, prefix: str):
    """Ingest (first server only; ``ids`` is None), index build, diagnose, suggest; returns the run and pool ids."""
    pid, client = server.proc.pid, server.client
    out.setdefault("idle_rss_mb", _status(pid, "VmRSS"))

    def step(name: str, fn):
        name = prefix + name
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        out["steps"][name] = {"s": round(seconds, 2), "peak_rss_mb": round(_status(pid, "VmHWM")),
                              "rss_after_mb": round(_status(pid, "VmRSS"))}
        print(f"{name}: {out['steps'][name]}", file=sys.stderr)
        return value

    def ingest(target, total, seed, which):
        for chunk_ids, split in _chunks(total, seed, which):
            probs = model.predict_proba(split.embeddings)
            if which == "test":
                target.log_predictions(chunk_ids, split.embeddings, labels=split.labels, probabilities=probs,
                                       metadata=split.metadata, uris=split.uris, progress=False)
            else:
                target.add(chunk_ids, split.embeddings, probabilities=probs, metadata=split.metadata,
                           uris=split.uris, progress=False)
    pool = None
    if ids is None:
        run_ = client.create_run("mem", class_names=CLASS_NAMES, embedding_dim=128)
        step("ingest test", lambda: ingest(run_, args.test_rows, 4, "test"))
        if args.pool_rows:
            pool = client.create_pool("mem-pool", embedding_dim=128, num_classes=len(CLASS_NAMES))
            step("ingest pool", lambda: ingest(pool, args.pool_rows, 104, "pool"))
            step("index build", lambda: _wait_index(server.metrics_port, pool.id, args.pool_rows))
    else:
        run_ = client.get_run(ids[0])
        pool = client.get_pool(ids[1]) if ids[1] else None
    diagnosis = None
    for i in range(args.diagnose_reps):
        diagnosis = step(f"diagnose {i + 1}", lambda: run_.diagnose(progress=False))
    if diagnosis is not None:
        out.setdefault("regions", []).append(len(diagnosis.to_frame()))
    if pool is not None and "suggest" in args.steps:
        for name in ("suggest first", "suggest warm"):
            # allow_repeats: both calls rank the same eligible rows, so their picks can be compared
            # (and across code versions: digests of the picked ids in rank order, and of their set).
            picks = step(name, lambda: run_.suggest(pool, BUDGET, strategy=args.strategy, progress=False,
                                                    allow_repeats=True))
            for key, ids in (("picks_sha256", list(picks["sample_id"])), ("picked_set_sha256", sorted(picks["sample_id"]))):
                out["steps"][prefix + name][key] = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return run_.id, pool.id if pool is not None else ""


def _slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(set(x)) >= 2 else float("nan")


def fragment(runs: list[dict]) -> str:
    """Markdown: per-step peak server RSS of the runs with a pool, then diagnose time vs test rows."""
    lines = ["Peak RSS of the server process (VmHWM, reset before each step) through the SDK on loopback; "
             "listings scenario, 128-d, generated and sent 1M rows at a time. `code` is the commit the "
             "server ran from. Ray: a throw-away local cluster (2 nodes x 1 CPU) on the same machine, the "
             "server started with `--ray-address` on the same stored rows (diagnose's kNN search as Ray tasks, "
             "the pool index in 2 Ray shards); the Ray workers' own memory is not in these figures.", ""]
    with_pool = [r for r in runs if r["pool_rows"]]
    if with_pool:
        cols = [(r, w) for r in with_pool for w in r["compute"]]
        lines += ["| step | " + " | ".join(f"{r['code']} {w} {r['test_rows'] / 1e6:g}M+{r['pool_rows'] / 1e6:g}M "
                                             "MB (s)" for r, w in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        names = []
        for r, w in cols:
            for k in _steps_of(r, w):
                if k not in names:
                    names.append(k)
        for k in names:
            cells = []
            for r, w in cols:
                st = _steps_of(r, w).get(k)
                cells.append(f"{st['peak_rss_mb']:,} ({st['s']:.0f})" if st else "–")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("| **peak** | " + " | ".join(f"**{r[w]['peak_rss_mb']:,}**" for r, w in cols) + " |")
        lines.append("")
    lines += ["Diagnose (one call through the server, wall s) against test rows:", "",
              "| code | way | test rows | diagnose s | server peak RSS in diagnose MB |", "|---|---|---:|---:|---:|"]
    groups: dict = {}
    for r in runs:
        for w in r["compute"]:
            st = _steps_of(r, w).get("diagnose 1")
            if st:
                lines.append(f"| {r['code']} | {w} | {r['test_rows']:,} | {st['s']:.0f} | {st['peak_rss_mb']:,} |")
                groups.setdefault((r["code"], w), []).append((r["test_rows"], st["s"], st["peak_rss_mb"]))
    slopes = [f"{code} {w}: time {_slope([a for a, _, _ in v], [b for _, b, _ in v]):.2f}, "
              f"RSS {_slope([a for a, _, _ in v], [c for _, _, c in v]):.2f}"
              for (code, w), v in groups.items() if len({a for a, _, _ in v}) >= 2]
    if slopes:
        lines += ["", "Scaling slope (log-log, vs test rows; 1 = linear): " + "; ".join(slopes) + "."]
    return "\n".join(lines) + "\n"


def _steps_of(run: dict, way: str) -> dict:
    prefix = "" if way == run["compute"][0] else f"{way}: "
    return {k[len(prefix):]: v for k, v in run["steps"].items()
            if (k.startswith(prefix) if prefix else ": " not in k)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test-rows", type=int, default=1_000_000)
    p.add_argument("--pool-rows", type=int, default=1_000_000)
    p.add_argument("--diagnose-reps", type=int, default=1)
    p.add_argument("--steps", default="diagnose,suggest")
    p.add_argument("--strategy", default="targeted", help="the suggest steps' strategy")
    p.add_argument("--compute", default="in-process",
                   help="comma-separated ways, each a server on the same rows: in-process, "
                        "ray (a local 2-node cluster)")
    p.add_argument("--object-store-mb", type=int, default=1000)
    p.add_argument("--code-root", default="", help="run the server from this checkout (default: this one)")
    p.add_argument("--json-out", default="")
    p.add_argument("--write", action="store_true",
                   help="write bench/results/server_memory.md from the runs in --json-out (and this one)")
    p.add_argument("--write-only", action="store_true", help="only --write, from the runs already in --json-out")
    args = p.parse_args(argv)
    if args.write_only:
        runs = [json.loads(line) for line in Path(args.json_out).read_text().splitlines() if line.strip()]
        text = fragment(runs)
        write_fragment("server_memory", text)
        print(text)
        return {}
    out = run(args)
    line = json.dumps(out)
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    if args.write:
        runs = ([json.loads(x) for x in Path(args.json_out).read_text().splitlines() if x.strip()]
                if args.json_out else [out])
        write_fragment("server_memory", fragment(runs))
    return out


if __name__ == "__main__":
    main()
