"""Sharded pool search on a local Ray cluster vs one-process faiss, same data, same queries.

The pool is bench/pool_search.py's 128-d mixture. Three ways, each in a child
process of its own so peak RSS is per process:

- one process: our ``PoolIndex`` (IVF-Flat, one process), the peer;
- Ray: ``ShardedPoolIndex`` with one shard per node as Ray actors on a local
  cluster of ``--nodes`` nodes (``ray start``, 1 CPU each), queried from a
  driver process; peak RSS of the driver and of each shard actor;
- exact: faiss ``IndexFlatIP`` on the normalised vectors, for recall@k.

Rows are generated in each child from the same seed (the data never crosses
processes except as Ray puts the shards to the actors, which is what is measured).

    .venv/bin/python bench/sharded_search.py --rows 1000000 3000000

Writes bench/results/sharded_search.md and prints it.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

from measure import ROOT, peak_rss_mb, write_fragment
from pool_search import DIM, mixture

sys.path.insert(0, str(ROOT / "service"))

from blindspots_server.core.pool_index import PoolIndex  # noqa: E402
from blindspots_server.core.sharded_index import ShardedPoolIndex  # noqa: E402


@dataclass
class Side:
    description: str
    build_s: float
    query_s: float
    ids: np.ndarray
    rss_mb: list[float]        # driver (or the one process) first, then each shard actor


def _one_process(rows: int, queries: int, k: int, out) -> None:
    pool, q = mixture(rows, seed=1), mixture(queries, seed=2)
    t0 = time.perf_counter()
    index = PoolIndex(DIM).build(pool)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ids = index.search(q, k)
    out.send(Side(index.description, build_s, time.perf_counter() - t0, ids, [peak_rss_mb()]))


def _on_ray(address: str, rows: int, queries: int, k: int, shards: int, out) -> None:
    from blindspots_server.ray_cluster import RayCluster
    cluster = RayCluster(address)
    pool, q = mixture(rows, seed=1), mixture(queries, seed=2)
    t0 = time.perf_counter()
    index = ShardedPoolIndex(DIM, shards=shards, compute=cluster).build(pool)
    build_s = time.perf_counter() - t0
    del pool
    t0 = time.perf_counter()
    _, ids = index.search(q, k)
    query_s = time.perf_counter() - t0
    actors = cluster.call_all(index._workers, "peak_rss_mb")
    out.send(Side(index.description, build_s, query_s, ids, [peak_rss_mb(), *actors]))
    index.close()
    cluster.shutdown()


def _exact(rows: int, queries: int, k: int, out) -> None:
    import faiss
    pool, q = mixture(rows, seed=1), mixture(queries, seed=2)
    faiss.normalize_L2(pool)
    faiss.normalize_L2(q)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(pool)
    t0 = time.perf_counter()
    _, ids = flat.search(q, k)
    out.send(Side("Flat (exact)", 0.0, time.perf_counter() - t0, ids, [peak_rss_mb()]))


def _child(target, *args) -> Side:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, send))
    proc.start()
    while not receive.poll(1.0):
        if not proc.is_alive():
            raise RuntimeError(f"{target.__name__} ended (exit {proc.exitcode}) without a result")
    result = receive.recv()
    proc.join()
    return result


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return sum(len(np.intersect1d(f, e)) for f, e in zip(found, exact)) / exact.size


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--object-store-mb", type=int, default=2048)
    args = parser.parse_args(argv)
    from blindspots_server.ray_cluster import local_cluster
    load_start = os.getloadavg()[0]
    lines = [f"Pool search: `ShardedPoolIndex` as Ray actors ({args.nodes} local nodes, `ray start`, 1 CPU each, "
             f"one shard per node) vs our `PoolIndex` in one process, {DIM}-d mixture as in pool-search, "
             f"{args.queries:,} queries x k={args.k}; recall@k against exact `IndexFlatIP`. Peak RSS (VmHWM) per "
             "process: the Ray driver holds the generated pool while it ships the shards.", "",
             "| pool rows | way | index | build s | query s | recall@k | peak RSS MiB per process |",
             "|---:|---|---|---:|---:|---:|---|"]
    with local_cluster(nodes=args.nodes, cpus_per_node=1, object_store_mb=args.object_store_mb) as address:
        for rows in args.rows:
            exact = _child(_exact, rows, args.queries, args.k)
            one = _child(_one_process, rows, args.queries, args.k)
            ray = _child(_on_ray, address, rows, args.queries, args.k, args.nodes)
            for name, side in (("one process", one), ("Ray shards", ray)):
                rss = " / ".join(f"{r:,.0f}" for r in side.rss_mb)
                label = "one process" if name == "one process" else "driver / " + " / ".join(
                    f"shard {i}" for i in range(len(side.rss_mb) - 1))
                lines.append(f"| {rows:,} | {name} | {side.description} | {side.build_s:.1f} | {side.query_s:.2f} | "
                             f"{_recall(side.ids, exact.ids):.3f} | {rss} ({label}) |")
            print(lines[-2], lines[-1], sep="\n", flush=True)
    lines += ["", f"Load average during the run: {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
              f"({os.cpu_count()} cores; other work shares the machine, so read the ratios, not the seconds)."]
    text = "\n".join(lines + [""])
    write_fragment("sharded_search", text)
    print(text)
    return text


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A timeout's SIGTERM must still stop the local cluster (local_cluster's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
