"""`blindspots store copy` against ingesting the same rows, in the same run.

Ingests N rows (8-d embeddings, 10k rows per batch, 3 metadata columns) into an embedded store
and into a PostgreSQL store (no gRPC), then copies the embedded store into a second, empty
PostgreSQL database (moving to PostgreSQL) and that copy back into a new data directory (a
PostgreSQL store's backup). Each copy runs in a child process of its own, so its peak RSS is
the copy's alone. The PostgreSQL store needs a server (BLINDSPOTS_TEST_POSTGRES, as the tests;
default postgresql://postgres@127.0.0.1:5432/postgres): fresh databases are made and dropped.

    .venv/bin/python bench/store_copy.py --rows 1000000

Prints a table: each copy's seconds over the seconds to ingest the same rows into the same kind
of store (the way a user would move data without `store copy`), and its peak RSS.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid

import numpy as np

from measure import ROOT

sys.path.insert(0, str(ROOT / "service"))
import pyarrow as pa  # noqa: E402

from blindspots_server.storage import RunRecord, open_store  # noqa: E402
from blindspots_server.storage.rows import build_table  # noqa: E402

PER_BATCH = 10_000


def _ingest(store, rows: int) -> float:
    store.create_run(RunRecord(id="run_big", name="r", project="p", model_name="m", model_version="1",
                               dataset_name="d", class_names=["a", "b"], embedding_dim=8, created_at=time.time()))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for b in range(rows // PER_BATCH):
        ids = [f"s{b}-{i}" for i in range(PER_BATCH)]
        meta = {"camera": ("string", pa.array([f"cam{i % 7}" for i in range(PER_BATCH)])),
                "hour": ("number", pa.array(rng.integers(0, 24, PER_BATCH))),
                "score": ("number", pa.array(rng.random(PER_BATCH)))}
        table = build_table(ids, rng.normal(size=(PER_BATCH, 8)).astype(np.float32), rng.integers(0, 2, PER_BATCH),
                            np.full((PER_BATCH, 2), 0.5, np.float32), None, meta)
        store.ingest_batch("run", "run_big", f"b{b}", table, {k: kind for k, (kind, _) in meta.items()})
    return time.perf_counter() - start


def _copy(source: str, source_files, dest: str, dest_files, out) -> None:
    from blindspots_server.storage.transfer import copy_between
    start = time.perf_counter()
    report = copy_between(source, source_files, dest, dest_files)
    out.put((time.perf_counter() - start, report.rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _child_copy(*args) -> tuple[float, int, float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_copy, args=(*args, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    import psycopg
    admin = os.environ.get("BLINDSPOTS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    names = [f"bs_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    catalogs = [admin.rsplit("/", 1)[0] + "/" + name for name in names]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            embedded = open_store(data)
            ingest_embedded = _ingest(embedded, args.rows)
            embedded.close()
            pg = open_store(catalogs[0], files=os.path.join(tmp, "files0"))
            ingest_pg = _ingest(pg, args.rows)
            pg.close()
            to_pg = _child_copy(data, None, catalogs[1], os.path.join(tmp, "files1"))
            back = _child_copy(catalogs[1], os.path.join(tmp, "files1"), os.path.join(tmp, "backup"), None)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    print(f"{args.rows} rows in {args.rows // PER_BATCH} batches")
    print("| step | copy s | ingest of the same rows s | copy / ingest | copy peak RSS MiB | rows copied |")
    print("|---|---:|---:|---:|---:|---:|")
    for step, (seconds, rows, rss), ingest in (("embedded -> PostgreSQL", to_pg, ingest_pg),
                                               ("PostgreSQL -> data directory (backup)", back, ingest_embedded)):
        print(f"| {step} | {seconds:.1f} | {ingest:.1f} | {seconds / ingest:.2f}x | {rss:.0f} | {rows} |")


if __name__ == "__main__":
    main()
