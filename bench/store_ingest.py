"""Store-level ingest and delete, embedded vs PostgreSQL, in the same run.

Writes N rows (8-d embeddings, 10k rows per batch) straight into each store (no gRPC), then reads
each run's stored_bytes and deletes it. Then a listing's page: ``--page`` small runs (3 batches and
a diagnosis each) sized at once by ``stored_bytes`` (what ListRuns calls) against one call per run (what
it cost before it read a page at once: the same four look-ups per run), which must agree. The PostgreSQL store needs a server
(BLINDSPOTS_TEST_POSTGRES, as the tests; default postgresql://postgres@127.0.0.1:5432/postgres):
a fresh database is made for the run and dropped after.

    .venv/bin/python bench/store_ingest.py --rows 1000000

Prints a table; ratios are PostgreSQL over embedded, measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid

import numpy as np

from measure import ROOT

sys.path.insert(0, str(ROOT / "service"))
import pyarrow as pa  # noqa: E402

from blindspots_server.storage import DiagnosisRecord, RunRecord, open_store  # noqa: E402
from blindspots_server.storage.rows import build_table  # noqa: E402

PER_BATCH = 10_000


def _one(store, rows: int) -> tuple[float, float, float]:
    store.create_run(RunRecord(id="run_big", name="r", project="p", model_name="m", model_version="1",
                               dataset_name="d", class_names=["a", "b"], embedding_dim=8, created_at=time.time()))
    start = time.perf_counter()
    for b in range(rows // PER_BATCH):
        ids = [f"s{b}-{i}" for i in range(PER_BATCH)]
        table = build_table(ids, np.zeros((PER_BATCH, 8), np.float32), np.zeros(PER_BATCH),
                            np.full((PER_BATCH, 2), 0.5, np.float32), None, {})
        store.ingest_batch("run", "run_big", f"b{b}", table, {})
    ingest = time.perf_counter() - start
    start = time.perf_counter()
    store.stored_bytes("run", ["run_big"])
    sized = time.perf_counter() - start
    start = time.perf_counter()
    store.delete("run", "run_big")
    return ingest, sized, time.perf_counter() - start


def _page(store, runs: int, reps: int = 5) -> tuple[float, float]:
    """Median seconds to size ``runs`` runs: stored_bytes for all at once, and run by run (the
    way ListRuns sized them before)."""
    ids = [f"page{r}" for r in range(runs)]
    for rid in ids:
        store.create_run(RunRecord(id=rid, name="r", project="p", model_name="m", model_version="1",
                                   dataset_name="d", class_names=["a", "b"], embedding_dim=8, created_at=time.time()))
        for b in range(3):
            table = build_table([f"s{b}-{i}" for i in range(10)], np.zeros((10, 8), np.float32), np.zeros(10),
                                np.full((10, 2), 0.5, np.float32), None, {})
            store.ingest_batch("run", rid, f"b{b}", table, {})
        store.save_diagnosis(DiagnosisRecord(id=f"diag-{rid}", run_id=rid, created_at=time.time(), job_id="",
                                             payload=b"x"), pa.table({"region": pa.array([0], pa.int32())}))

    def per_run() -> dict[str, int]:
        return {rid: store.stored_bytes("run", [rid])[rid] for rid in ids}

    timed = {}
    for name, fn in (("batched", lambda: store.stored_bytes("run", ids)), ("per run", per_run)):
        seconds, answer = [], None
        for _ in range(reps):
            start = time.perf_counter()
            answer = fn()
            seconds.append(time.perf_counter() - start)
        timed[name] = (sorted(seconds)[reps // 2], answer)
    assert timed["batched"][1] == timed["per run"][1], "the two ways disagree"
    return timed["batched"][0], timed["per run"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=100, help="runs in the listing page sized at once")
    args = parser.parse_args()
    import psycopg
    admin = os.environ.get("BLINDSPOTS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {}
            embedded = open_store(os.path.join(tmp, "data"))
            results["embedded"] = _one(embedded, args.rows)
            pages = {"embedded": _page(embedded, args.page)}
            embedded.close()
            catalog = admin.rsplit("/", 1)[0] + "/" + name
            pg = open_store(catalog, files=os.path.join(tmp, "files"))
            results["postgresql"] = _one(pg, args.rows)
            pages["postgresql"] = _page(pg, args.page)
            pg.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    print(f"{args.rows} rows in {args.rows // PER_BATCH} batches")
    print("| store | ingest s | rows/s | stored_bytes s | delete s |")
    print("|---|---:|---:|---:|---:|")
    for store, (ingest, sized, deleted) in results.items():
        print(f"| {store} | {ingest:.1f} | {args.rows / ingest:,.0f} | {sized:.3f} | {deleted:.2f} |")
    (ie, _, de), (ip, _, dp) = results["embedded"], results["postgresql"]
    print(f"PostgreSQL / embedded: ingest {ip / ie:.2f}x, delete {dp / de:.2f}x")
    print(f"\nstored_bytes of a page of {args.page} runs (3 batches and a diagnosis each), median of 5:")
    print("| store | all at once s | run by run s | speed-up |")
    print("|---|---:|---:|---:|")
    for store, (batched, per_run) in pages.items():
        print(f"| {store} | {batched:.4f} | {per_run:.4f} | {per_run / batched:.1f}x |")


if __name__ == "__main__":
    main()
