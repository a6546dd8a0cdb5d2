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

``--shards-read``: nobody ships rows. The pool is pool_search's mixture as a
row source (``MixtureRows``: block-seeded, so any process generates any range
of it); each shard actor reads (generates) its own range a chunk at a time
(``ShardedPoolIndex.build_from``), as it would read a pool's Parquet batch
files, and the driver never holds the pool. The one-process peers build from
the same source, a chunk at a time (``PoolIndex.build_from``): our auto kind
and IVF-Flat. Exact top-k for recall is brute force over the shards' rows,
re-read chunk by chunk (``ShardedPoolIndex.exact_search``), after the shards'
peak RSS is read. This is how the 10M-row pool is measured:

    .venv/bin/python bench/sharded_search.py --shards-read --rows 10000000

Writes bench/results/sharded_search.md and prints it; ``--shards-read`` keeps
the fragment's earlier table and replaces only its own section.
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
from pool_search import DIM, MixtureRows, mixture

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


def _one_process_reading(rows: int, queries: int, k: int, kind: str, out) -> None:
    q = mixture(queries, seed=2)
    t0 = time.perf_counter()
    index = PoolIndex(DIM, kind=kind).build_from(MixtureRows(rows, seed=1).read, rows)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ids = index.search(q, k)
    out.send(Side(index.description, build_s, time.perf_counter() - t0, ids, [peak_rss_mb()]))


def _on_ray_reading(address: str, rows: int, queries: int, k: int, shards: int, kind: str, out) -> None:
    from blindspots_server.ray_cluster import RayCluster
    cluster = RayCluster(address)
    q = mixture(queries, seed=2)
    t0 = time.perf_counter()
    index = ShardedPoolIndex(DIM, shards=shards, kind=kind, compute=cluster).build_from(MixtureRows(rows, seed=1))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ids = index.search(q, k)
    query_s = time.perf_counter() - t0
    actors = cluster.call_all(index._workers, "peak_rss_mb")       # before the exact search's chunks
    driver = peak_rss_mb()
    try:
        import faiss
        threads = cluster._ray.get([w.__ray_call__.remote(lambda _: faiss.omp_get_max_threads())
                                    for w in index._workers])
    except Exception:               # an older Ray without __ray_call__: leave it out
        threads = []
    t0 = time.perf_counter()
    _, exact = index.exact_search(q, k)
    exact = Side("Flat (exact, brute force over the shards' rows)", 0.0, time.perf_counter() - t0, exact, [])
    out.send((Side(index.description, build_s, query_s, ids, [driver, *actors]), exact, threads))
    index.close()
    cluster.shutdown()


def _child(target, *args) -> Side:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, send), daemon=True)   # a timeout's exit ends it
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
    parser.add_argument("--shards-read", action="store_true",
                        help="shards generate their own rows from the seeded source; nobody holds the pool")
    parser.add_argument("--one-process-kinds", nargs="*", default=["auto", "ivf"],
                        help="with --shards-read: the one-process peers' PoolIndex kinds")
    parser.add_argument("--shard-kind", default="auto", help="with --shards-read: the shards' PoolIndex kind")
    args = parser.parse_args(argv)
    if args.shards_read:
        return main_shards_read(args)
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


SECTION = "### Shards that read their own rows"


def main_shards_read(args) -> str:
    from blindspots_server.ray_cluster import local_cluster
    # Ray's workers must import the bench's row source (pool_search) and the service.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "bench"), str(ROOT / "service"), *filter(None, [os.environ.get("PYTHONPATH")])])
    load_start = os.getloadavg()[0]
    lines = [SECTION, "",
             f"Nobody ships rows: each shard actor generates its own row range of the 128-d mixture (block-seeded, "
             f"`MixtureRows`), a chunk at a time, as it would read a pool's batch files, and the driver never "
             f"holds the pool; the one-process peers build from the same source a chunk at a time. "
             f"{args.nodes} local Ray nodes (1 CPU each, one shard per node), {args.queries:,} queries x "
             f"k={args.k}; recall@k against brute force over the shards' rows. Peak RSS (VmHWM) per process; "
             "the shards' is read before the brute-force pass.", "",
             "| pool rows | way | index | build s | query s | recall@k | peak RSS MiB per process |",
             "|---:|---|---|---:|---:|---:|---|"]
    notes = []
    with local_cluster(nodes=args.nodes, cpus_per_node=1, object_store_mb=args.object_store_mb) as address:
        for rows in args.rows:
            ray, exact, threads = _child(_on_ray_reading, address, rows, args.queries, args.k, args.nodes,
                                         args.shard_kind)
            print(f"{rows:,} Ray shards done: build {ray.build_s:.1f} s, exact pass {exact.query_s:.1f} s",
                  flush=True)
            sides = [("Ray shards", ray)]
            for kind in args.one_process_kinds:
                sides.append((f"one process ({kind})", _child(_one_process_reading, rows, args.queries, args.k,
                                                              kind)))
                print(f"{rows:,} one process {kind} done", flush=True)
            for name, side in sides:
                rss = " / ".join(f"{r:,.0f}" for r in side.rss_mb)
                label = "one process" if name.startswith("one") else "driver / " + " / ".join(
                    f"shard {i}" for i in range(len(side.rss_mb) - 1))
                lines.append(f"| {rows:,} | {name} | {side.description} | {side.build_s:.1f} | "
                             f"{side.query_s:.2f} | {_recall(side.ids, exact.ids):.3f} | {rss} ({label}) |")
                print(lines[-1], flush=True)
            notes.append(f"{rows:,} rows: the brute-force pass over the shards took {exact.query_s:.0f} s"
                         + (f"; faiss threads per shard actor: {threads}" if threads else "") + ".")
    lines += ["", " ".join(notes) + f" Load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at "
              f"the end ({os.cpu_count()} cores, shared with other work: read the ratios)."]
    fragment = ROOT / "bench" / "results" / "sharded_search.md"
    earlier = fragment.read_text().split(SECTION)[0].rstrip() + "\n\n" if fragment.exists() else ""
    text = earlier + "\n".join(lines + [""])
    write_fragment("sharded_search", text)
    print(text)
    return text


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A timeout's SIGTERM must still stop the local cluster (local_cluster's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
