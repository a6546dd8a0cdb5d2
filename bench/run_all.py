"""Run every benchmark in bench/ and write bench/RESULTS.md.

Each benchmark is its own script writing a markdown fragment to
bench/results/<name>.md; this runs them one after another as subprocesses
(bounded by a timeout each, so one stuck benchmark cannot hold the rest) and
merges their fragments under the machine, the package versions and the mode.

    make bench          # .venv/bin/python bench/run_all.py
    make bench-quick    # .venv/bin/python bench/run_all.py --quick  (small sizes)
    .venv/bin/python bench/run_all.py --quick --only slice_search ingest
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from measure import RESULTS, ROOT, machine

BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Benchmark:
    name: str            # script bench/<name>.py, fragment bench/results/<name>.md
    title: str
    quick_s: int         # timeout in quick / full mode
    full_s: int
    sizes_quick: str
    sizes_full: str
    fragment: str = ""           # default: the script's name
    quick_args: tuple[str, ...] = ("--quick",)
    full_args: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("slice_search", "Slice search vs sliceline", 900, 3600, "10k, 100k rows",
              "10k, 100k, 1M rows"),
    Benchmark("clustering", "Failure clustering vs HDBSCAN", 900, 3600, "10k, 30k rows x 128-d",
              "10k, 30k, 100k rows x 128-d"),
    Benchmark("pool_search", "Pool search vs exact faiss Flat", 600, 1800, "100k x 128-d",
              "100k, 1M x 128-d"),
    Benchmark("ingest", "Ingest vs local Parquet write", 600, 1800, "100k rows", "100k, 1M rows"),
    Benchmark("end_to_end", "End to end through the server", 1800, 5400, "10k, 100k test rows",
              "10k, 100k, 1M test rows"),
    Benchmark("closed_loop", "Closed-loop quality", 1200, 3600, "3 seeds, budget 300",
              "5 seeds, budgets 300 and 600"),
    Benchmark("sharded_search", "Sharded pool search on Ray vs one-process faiss", 900, 1800, "200k x 128-d",
              "1M x 128-d", quick_args=("--rows", "200000", "--queries", "500", "--object-store-mb", "512"),
              full_args=("--rows", "1000000", "--queries", "1000", "--object-store-mb", "1024")),
    Benchmark("shared_shards", "A pool's Ray index shards shared by every server (restart, replicas)", 900, 1800,
              "200k x 128-d", "1M x 128-d", quick_args=("--quick", "--write"), full_args=("--write",)),
    Benchmark("tracing_overhead", "What OpenTelemetry tracing costs a call", 600, 1200,
              "500 GetRun, 20 Suggest", "2,000 GetRun, 120 Suggest",
              quick_args=("--calls", "500", "--suggests", "20", "--write"),
              full_args=("--suggests", "120", "--rounds", "6", "--write")),
    Benchmark("slice_discovery", "Slice discovery on held-out scenario families", 2400, 5400,
              "quick sizes (<= 20k rows), 2 seeds (4 on nulls)", "to 200k rows, 3 seeds (20 on nulls)"),
    Benchmark("active_learning", "Active learning vs scikit-activeml baselines (held-out families)", 1800,
              7200, "2 seeds, budget 300, listings only", "5 seeds, budgets 300 and 600, every held-out family",
              fragment="active_learning_heldout"),
    Benchmark("region_typing", "Region typing (label noise vs data gap) on held-out families", 900, 1800,
              "2 seeds per family", "5 seeds per family", quick_args=("--draws", "2"), full_args=()),
    Benchmark("server_memory", "Server memory per step, and diagnose in-process vs Ray", 1200, 3600,
              "100k test + 100k pool rows", "1M test + 1M pool rows",
              quick_args=("--test-rows", "100000", "--pool-rows", "100000", "--compute", "in-process,ray", "--write"),
              full_args=("--test-rows", "1000000", "--pool-rows", "1000000", "--compute", "in-process,ray",
                         "--write")),
    # Written by the reliability work; run when present.
    Benchmark("load_test", "Load test (concurrent ingest, diagnose, suggest)", 300, 600,
              "10 s, 16 ingest clients", "20 s, 16 ingest clients", fragment="load",
              quick_args=("--seconds", "10"), full_args=()),
)


@dataclass
class Ran:
    bench: Benchmark
    seconds: float
    status: str          # "ok", "timed out after N s", "failed (exit N)", "absent"
    fragment: str


def run_one(b: Benchmark, quick: bool) -> Ran:
    script = BENCH / f"{b.name}.py"
    if not script.exists():
        return Ran(b, 0.0, "absent", "")
    fragment = RESULTS / f"{b.fragment or b.name}.md"
    limit = b.quick_s if quick else b.full_s
    cmd = [sys.executable, str(script), *(b.quick_args if quick else b.full_args)]
    print(f"== {b.name}: {' '.join(cmd[1:])} (limit {limit} s)", file=sys.stderr, flush=True)
    # A quick run must not overwrite a fragment with full-size figures: its text goes
    # into RESULTS.md and the earlier fragment is put back.
    earlier = fragment.read_text() if quick and fragment.exists() else None
    t0 = time.time()
    # Own session: on timeout the whole group goes, server subprocesses and peers included.
    proc = subprocess.Popen(cmd, cwd=BENCH, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=limit)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        status = f"timed out after {limit} s"
    seconds = time.time() - t0
    print(f"   {b.name}: {status} in {seconds:.0f} s", file=sys.stderr, flush=True)
    # Only a fragment written by this run counts; an older one would pass stale figures off as new.
    fresh = fragment.exists() and fragment.stat().st_mtime >= t0
    text = fragment.read_text() if fresh else ""
    if earlier is not None:
        fragment.write_text(earlier)
    if status != "ok":
        tail = "\n".join(err.strip().splitlines()[-15:])
        text += f"\n**{status}**; last lines of its output:\n\n```\n{tail}\n```\n"
    elif not fresh:
        text = f"(ran, but wrote no fresh `bench/results/{fragment.name}`)\n"
    return Ran(b, seconds, status, text)


def kept(b: Benchmark, quick: bool) -> "Ran | None":
    """A benchmark not re-run: its last fragment, with its date, or nothing in quick mode."""
    fragment = RESULTS / f"{b.fragment or b.name}.md"
    if quick or not fragment.exists():
        return None
    when = dt.datetime.fromtimestamp(fragment.stat().st_mtime)
    return Ran(b, float("nan"), f"kept from the run of {when:%Y-%m-%d %H:%M}", fragment.read_text())


def report(ran: list[Ran], quick: bool, started: dt.datetime, total_s: float) -> str:
    info = machine()
    mode = "QUICK mode (`make bench-quick`: small sizes)" if quick else "full mode (`make bench`)"
    lines = [f"# Benchmark results — {mode}", "",
             f"Run {started:%Y-%m-%d %H:%M} (local time), {total_s / 60:.1f} min in all. Every figure puts ours "
             "next to a peer measured in the same run on the same data; timings are medians of the "
             "repetitions shown, and the ratio is the figure to read (the machine may be shared).", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}, no GPU used.",
             "", "Versions: python " + info["python"] + ", "
             + ", ".join(f"{k} {info[k]}" for k in info if k not in ("cpu", "cores", "ram", "os", "python"))
             + ".", "",
             "| benchmark | sizes | status | wall s |", "|---|---|---|---:|"]
    for r in ran:
        if r.status == "absent":
            continue
        sizes = r.bench.sizes_quick if quick else r.bench.sizes_full
        seconds = "–" if r.seconds != r.seconds else f"{r.seconds:.0f}"
        lines.append(f"| [{r.bench.title}](#{r.bench.name.replace('_', '-')}) | {sizes} | {r.status} | "
                     f"{seconds} |")
    lines.append("")
    for r in ran:
        if r.status == "absent":
            continue
        lines += [f"## {r.bench.name.replace('_', '-')}", "", f"**{r.bench.title}** "
                  f"(`{' '.join(['bench/' + r.bench.name + '.py', *(r.bench.quick_args if quick else r.bench.full_args)])}`)", "", r.fragment.strip(), ""]
    absent = [r.bench.name for r in ran if r.status == "absent"]
    if absent:
        lines += [f"Not present in this tree: {', '.join(f'bench/{a}.py' for a in absent)}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes, not an hour)")
    parser.add_argument("--only", nargs="+", help="benchmark names to run (default: all)")
    parser.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    args = parser.parse_args(argv)
    started, t0 = dt.datetime.now(), time.time()
    # With --only (full mode), the other benchmarks keep their last full-mode fragment, so
    # RESULTS.md always covers every benchmark and says which figures are older.
    ran = [run_one(b, args.quick) if not args.only or b.name in args.only else kept(b, args.quick)
           for b in BENCHMARKS]
    ran = [r for r in ran if r is not None]
    text = report(ran, args.quick, started, time.time() - t0)
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
