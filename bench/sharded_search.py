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

``--suggest BUDGET`` (with ``--shards-read``): after the kNN queries each way
also times a whole targeted suggestion (``suggest_candidates("targeted",
BUDGET)``, 3 failure regions of 1,000 failures, each region drawn from 3
mixture components of its own), twice: first with the rows the ranking scores
read from the index (``pool.embeddings=None``, ``index.vectors``: the Ray
driver never holds the pool), then with the whole pool as unit rows in the
process (what the server's suggest does today). Reports seconds, the picks
shared between the ways, and the peak RSS per process after each:

    .venv/bin/python bench/sharded_search.py --shards-read --suggest 10000 --rows 10000000 \
        --shard-kind ivfsq8 --one-process-kinds ivfsq8 ivf

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
import pandas as pd

from measure import ROOT, peak_rss_mb, write_fragment
from pool_search import CENTERS, DIM, MixtureRows, mixture

sys.path.insert(0, str(ROOT / "service"))

from blindspots_server.core.pool_index import PoolIndex, normalise_in_place  # noqa: E402
from blindspots_server.core.sharded_index import ShardedPoolIndex  # noqa: E402
from blindspots_server.core.suggest import PoolData, TargetRegion, suggest_candidates  # noqa: E402


@dataclass
class Side:
    description: str
    build_s: float
    query_s: float
    ids: np.ndarray
    rss_mb: list[float]        # driver (or the one process) first, then each shard actor


@dataclass
class Suggested:
    rows_from: str             # where the ranking's rows come from: "index" or "process"
    seconds: float
    picks: np.ndarray          # pool rows, in rank order
    rss_mb: list[float]        # peak RSS after it: driver (or the one process) first, then each shard


def failure_regions(regions: int = 3, per_region: int = 1000) -> list[TargetRegion]:
    """Failure regions near the mixture's components: region r's failures come from 3 components of its own."""
    out = []
    for r in range(regions):
        components = np.random.default_rng([7, r]).choice(CENTERS, 3, replace=False)
        failures = mixture(per_region, seed=[8, r], components=components)
        out.append(TargetRegion(region_id=r, excess_errors=float(100 * (regions - r)),
                                failure_embeddings=failures,
                                failure_indices=np.arange(r * per_region, (r + 1) * per_region)))
    return out


def _suggest(index, rows: int, budget: int, pool: np.ndarray | None) -> tuple[float, np.ndarray]:
    """A whole targeted suggestion over the pool: ``pool`` its unit rows in this process, or None
    (the ranking reads the rows it scores from ``index``)."""
    regions = failure_regions()
    data = PoolData(embeddings=pool, probabilities=None, metadata=pd.DataFrame(index=pd.RangeIndex(rows)),
                    unit_rows=pool is not None)
    t0 = time.perf_counter()
    picks = suggest_candidates("targeted", budget, data, regions, index=index)
    seconds = time.perf_counter() - t0
    if len(picks) != budget:
        raise RuntimeError(f"{len(picks)} picks for a budget of {budget}")
    return seconds, np.array([c.pool_index for c in picks])


def _pool_in_process(rows: int) -> np.ndarray:
    """The whole pool as unit rows in one array (as the server's suggest reads it), a block at a time."""
    source = MixtureRows(rows, seed=1)
    out = np.empty((rows, DIM), np.float32)
    for start in range(0, rows, source.BLOCK):
        stop = min(rows, start + source.BLOCK)
        out[start:stop] = source.read(start, stop)
    return normalise_in_place(out)


def _both_suggestions(index, rows: int, budget: int, rss) -> list[Suggested]:
    """Rows from the index first (its peak read before the pool is loaded), then the pool in the process."""
    seconds, picks = _suggest(index, rows, budget, None)
    done = [Suggested("index", seconds, picks, rss())]
    print(f"suggest, rows from the index: {seconds:.1f} s, peak RSS {done[-1].rss_mb}", file=sys.stderr, flush=True)
    pool = _pool_in_process(rows)
    seconds, picks = _suggest(index, rows, budget, pool)
    del pool
    done.append(Suggested("process", seconds, picks, rss()))
    print(f"suggest, rows in the process: {seconds:.1f} s, peak RSS {done[-1].rss_mb}", file=sys.stderr, flush=True)
    return done


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


def _one_process_reading(rows: int, queries: int, k: int, kind: str, budget: int, out) -> None:
    q = mixture(queries, seed=2)
    t0 = time.perf_counter()
    index = PoolIndex(DIM, kind=kind).build_from(MixtureRows(rows, seed=1).read, rows)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ids = index.search(q, k)
    side = Side(index.description, build_s, time.perf_counter() - t0, ids, [peak_rss_mb()])
    suggested = _both_suggestions(index, rows, budget, lambda: [peak_rss_mb()]) if budget else []
    out.send((side, suggested))


def _on_ray_reading(address: str, rows: int, queries: int, k: int, shards: int, kind: str, budget: int,
                    out) -> None:
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
    suggested = _both_suggestions(index, rows, budget, lambda: [
        peak_rss_mb(), *cluster.call_all(index._workers, "peak_rss_mb")]) if budget else []
    t0 = time.perf_counter()
    _, exact = index.exact_search(q, k)
    exact = Side("Flat (exact, brute force over the shards' rows)", 0.0, time.perf_counter() - t0, exact, [])
    out.send((Side(index.description, build_s, query_s, ids, [driver, *actors]), exact, threads, suggested))
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


def _shared(picks: np.ndarray, reference: np.ndarray) -> float:
    return len(np.intersect1d(picks, reference)) / max(len(reference), 1)


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
    parser.add_argument("--suggest", type=int, default=0, metavar="BUDGET",
                        help="with --shards-read: also time a whole targeted suggestion of BUDGET rows per way")
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
SUGGEST_SECTION = "### A whole targeted suggestion over shards that read their own rows"


def _with_section(text: str, header: str, section: str) -> str:
    """``text`` with its ``header`` section (up to the next ### header) replaced by ``section``, or appended."""
    if header not in text:
        return (text.rstrip() + "\n\n" if text.strip() else "") + section
    before, after = text.split(header, 1)
    rest = after.split("\n### ", 1)
    return before + section + ("\n### " + rest[1] if len(rest) > 1 else "")


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
    suggest_lines = [SUGGEST_SECTION, "",
                     f"A whole `suggest_candidates(\"targeted\", {args.suggest:,})` per way, after its kNN queries: "
                     "3 failure regions of 1,000 failures, each drawn from 3 mixture components of its own "
                     "(excess errors 300/200/100). `rows from` says where the ranking's rows come from: `index` = "
                     "`pool.embeddings=None`, the few rows it scores read from the index (`index.vectors`: decoded "
                     "codes for SQ8), so the process never holds the pool; `process` = the whole pool as unit rows "
                     "in the process, as the server's suggest reads it today. Picks shared: of the budget, the rows "
                     "also picked by the reference (the last row's way). Peak RSS (VmHWM) per process after the "
                     "suggestion (cumulative: it includes the build).", "",
                     "| pool rows | way | index | kNN recall@k | rows from | suggest s | picks shared with reference "
                     "| peak RSS MiB per process |", "|---:|---|---|---:|---|---:|---:|---|"]
    suggest_notes = []
    with local_cluster(nodes=args.nodes, cpus_per_node=1, object_store_mb=args.object_store_mb) as address:
        for rows in args.rows:
            ray, exact, threads, ray_suggested = _child(_on_ray_reading, address, rows, args.queries, args.k,
                                                        args.nodes, args.shard_kind, args.suggest)
            print(f"{rows:,} Ray shards done: build {ray.build_s:.1f} s, exact pass {exact.query_s:.1f} s",
                  flush=True)
            sides = [("Ray shards", ray)]
            suggested = {"Ray shards": ray_suggested}
            for kind in args.one_process_kinds:
                side, suggested[f"one process ({kind})"] = _child(_one_process_reading, rows, args.queries, args.k,
                                                                  kind, args.suggest)
                sides.append((f"one process ({kind})", side))
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
            if args.suggest:
                short = {name: "Ray" if name == "Ray shards" else name[len("one process ("):-1] for name, _ in sides}
                all_picks = [(f"{short[name]}/{s.rows_from}", s.picks) for name, _ in sides for s in suggested[name]]
                reference = all_picks[-1][1]
                for name, side in sides:
                    for s in suggested[name]:
                        rss = " / ".join(f"{r:,.0f}" for r in s.rss_mb)
                        label = "one process" if name.startswith("one") else "driver / " + " / ".join(
                            f"shard {i}" for i in range(len(s.rss_mb) - 1))
                        suggest_lines.append(
                            f"| {rows:,} | {name} | {side.description} | {_recall(side.ids, exact.ids):.3f} | "
                            f"{s.rows_from} | {s.seconds:.1f} | {_shared(s.picks, reference):.3f} | {rss} ({label}) |")
                        print(suggest_lines[-1], flush=True)
                pairs = [f"{a} / {b}: {_shared(pa, pb):.3f}" for i, (a, pa) in enumerate(all_picks)
                         for b, pb in all_picks[i + 1:]]
                suggest_notes.append(f"{rows:,} rows, picks shared between every two ways (way/rows from): "
                                     + "; ".join(pairs) + ".")
    lines += ["", " ".join(notes) + f" Load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at "
              f"the end ({os.cpu_count()} cores, shared with other work: read the ratios)."]
    fragment = ROOT / "bench" / "results" / "sharded_search.md"
    text = fragment.read_text() if fragment.exists() else ""
    if args.suggest:
        suggest_lines += ["", " ".join(suggest_notes) + f" Load average {load_start:.1f} at the start, "
                          f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores, shared with other work).",
                          "", "Build and kNN queries of the same run:", "", *lines[4:]]
        text = _with_section(text, SUGGEST_SECTION, "\n".join(suggest_lines + [""]))
    else:
        text = _with_section(text, SECTION, "\n".join(lines + [""]))
    write_fragment("sharded_search", text)
    print(text)
    return text


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A timeout's SIGTERM must still stop the local cluster (local_cluster's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
