"""What a server restart, or a second replica, pays for a pool's Ray index shards.

A pool of ``--rows`` x 128-d clustered rows in a fresh embedded store (row files of 100k rows), a
throw-away local Ray cluster (two nodes, one CPU each). The server's pool-index layer
(``server.pool_indexes.PoolIndexes``) is opened three times over the same store, each time as a
new server would open it, with no handle on any shard:

- ``build``: the first server asks for the pool's index; the shards are built from the row files
  (what every server paid before the shards were shared, and after a restart of the cluster);
- ``second server``: another PoolIndexes asks for the same rows: it finds the pool's shared shards
  by name on the cluster and uses them;
- ``rows added``: ``--add`` more rows are stored, and a third PoolIndexes asks for all of them: the
  last shard reads the new rows itself (before: a build of the whole pool).

Each answer's top-10 for 500 queries is checked against the first one's (the same shards).

    .venv/bin/python bench/shared_shards.py --rows 1000000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np

from measure import ROOT, report

sys.path.insert(0, str(ROOT / "service"))

from blindspots_server.ray_cluster import RayCluster, local_cluster  # noqa: E402
from blindspots_server.server.pool_indexes import PoolIndexes  # noqa: E402
from blindspots_server.storage import PoolRecord, open_store  # noqa: E402
from blindspots_server.storage.rows import build_table  # noqa: E402

DIM = 128
BATCH = 100_000


def _rows(start: int, stop: int, seed: int = 0) -> np.ndarray:
    centers = np.random.default_rng(seed).normal(0, 1, (64, DIM)).astype(np.float32) * 3
    rng = np.random.default_rng(seed + 1 + start)
    return centers[rng.integers(0, 64, stop - start)] + rng.normal(0, 1, (stop - start, DIM)).astype(np.float32)


def _store_rows(store, start: int, stop: int) -> None:
    for a in range(start, stop, BATCH):
        b = min(stop, a + BATCH)
        store.ingest_batch("pool", "pool_bench", f"b{a}",
                           build_table([f"s{j}" for j in range(a, b)], _rows(a, b), None, None, None, {}), {})


def run(args) -> dict:
    out: dict = {"rows": args.rows, "added": args.add, "shards": 2}
    queries = _rows(0, 500, seed=7)
    with tempfile.TemporaryDirectory(prefix="bs-shared-") as tmp, \
            local_cluster(nodes=2, cpus_per_node=1, object_store_mb=args.object_store_mb) as address:
        cluster = RayCluster(address)
        store = open_store(f"{tmp}/data")
        try:
            store.create_pool(PoolRecord(id="pool_bench", name="p", project="p", embedding_dim=DIM,
                                         num_classes=0, created_at=time.time()))
            _store_rows(store, 0, args.rows)
            steps = {}

            def timed(name: str, rows: int):
                t0 = time.perf_counter()
                index = PoolIndexes(store, shards=2, compute=cluster).ensure_at("pool_bench", rows)
                steps[name] = round(time.perf_counter() - t0, 2)
                return index

            first = timed("build", args.rows)
            reference = first.search(queries, 10)[1]
            second = timed("second server", args.rows)
            out["second_same_top10"] = bool((second.search(queries, 10)[1] == reference).all())
            out["builds_after_second"] = second.builds
            _store_rows(store, args.rows, args.rows + args.add)
            grown = timed("rows added", args.rows + args.add)
            out["builds_after_growth"] = grown.builds
            out["index"] = grown.description
            out["seconds"] = steps
            out["second_vs_build"] = round(steps["second server"] / steps["build"], 4)
            out["growth_vs_build"] = round(steps["rows added"] / steps["build"], 4)
        finally:
            store.close()
            cluster.shutdown()
    return out


def fragment(r: dict) -> str:
    s = r["seconds"]
    return "\n".join([
        f"**A pool's Ray index shards, shared by every server** ({r['rows']:,} x {DIM}-d rows, {r['shards']} shards "
        f"on a two-node local Ray cluster; `{r['index']}`)",
        "",
        "| step | seconds | vs a build |",
        "|---|---:|---:|",
        f"| first server: shards built from the row files | {s['build']} | 1 |",
        f"| second server (or a restart): finds them by name | {s['second server']} | {r['second_vs_build']} |",
        f"| {r['added']:,} rows added: the last shard reads them | {s['rows added']} | {r['growth_vs_build']} |",
        "",
        f"Same top-10 for 500 queries from the second server's handle: {r['second_same_top10']}; shards built "
        f"{r['builds_after_growth']} time(s) in all. Before this change every server, and every restart, paid "
        f"the build.",
    ])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--add", type=int, default=10_000)
    ap.add_argument("--object-store-mb", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="200k rows")
    ap.add_argument("--write", action="store_true", help="write bench/results/shared_shards.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows = 200_000
    return report("shared_shards", run(args), fragment, args.write)


if __name__ == "__main__":
    main()
