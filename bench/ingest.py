"""Ingest benchmark: SDK -> gRPC (loopback) -> durable store, vs writing the same table to Parquet locally.

Ours: ``Run.log_predictions`` of the scenario's test split (ids, labels,
5-class probabilities, 128-d embeddings, four metadata columns, URIs) to a
``python -m blindspots_server`` subprocess on 127.0.0.1, each repetition into a
fresh run. Peer: ``pyarrow.parquet.write_table`` of the same columns in this
process, then fsync: what this machine's disk and one core allow without any
service in between. MB are the Arrow table's bytes.

    .venv/bin/python bench/ingest.py --quick     # 100k rows
    .venv/bin/python bench/ingest.py             # 100k, 1M rows

Writes bench/results/ingest.md and prints it.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from measure import ROOT, ServerProcess, Timing, repeat, write_fragment

sys.path.insert(0, str(ROOT / "service"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from blindspots_scenarios.listings import CLASS_NAMES, make_scenario  # noqa: E402


@dataclass
class Outcome:
    rows: int
    megabytes: float
    ours: Timing
    peer: Timing
    server_peak_rss_mb: float


def arrow_table(split, probs: np.ndarray) -> pa.Table:
    dim = split.embeddings.shape[1]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(split.embeddings.ravel()), dim)
    prob = pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), probs.shape[1])
    cols = {"sample_id": pa.array(split.ids), "label": pa.array(split.labels), "probabilities": prob,
            "embedding": emb, "uri": pa.array(split.uris)}
    table = pa.Table.from_pydict(cols)
    for name in split.metadata.columns:
        table = table.append_column(name, pa.array(split.metadata[name]))
    return table


def parquet_write(table: pa.Table, directory: str) -> None:
    path = os.path.join(directory, "table.parquet")
    pq.write_table(table, path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.remove(path)


def measure(rows: int, reps: int) -> Outcome:
    split = make_scenario(n_train=10, n_test=rows, n_pool=10, seed=3).test
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(CLASS_NAMES)), rows).astype(np.float32)
    table = arrow_table(split, probs)
    megabytes = table.nbytes / 1e6
    with tempfile.TemporaryDirectory(prefix="blindspots-bench-") as tmp:
        peer = repeat(lambda: parquet_write(table, tmp), reps)
        del table
        with ServerProcess(os.path.join(tmp, "data")) as server:
            counter = iter(range(1000))

            def ingest():
                run = server.client.create_run(f"ingest-{next(counter)}", class_names=CLASS_NAMES,
                                               embedding_dim=split.embeddings.shape[1])
                summary = run.log_predictions(split.ids, split.embeddings, labels=split.labels, probabilities=probs,
                                              metadata=split.metadata, uris=split.uris, progress=False)
                assert summary.rows_stored == rows, summary
            ours = repeat(ingest, reps, budget_s=120)
            rss = server.peak_rss_mb()
    del split, probs
    gc.collect()
    return Outcome(rows, megabytes, ours, peer, rss)


def table_text(results: list[Outcome]) -> str:
    lines = ["Ingest: SDK `log_predictions` through a server subprocess on loopback into the embedded "
             "store (fresh run per repetition) vs `pyarrow.parquet.write_table` + fsync of the same "
             "table in-process. Seconds are medians; 'of local limit' = our rows/s / Parquet rows/s.", "",
             "| rows | MB (Arrow) | reps | ours s | ours rows/s | ours MB/s | Parquet+fsync s | Parquet rows/s "
             "| Parquet MB/s | of local limit | server peak RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.rows:,} | {r.megabytes:.0f} | {r.ours.runs}/{r.peer.runs} | {r.ours.cell()} | "
                     f"{r.rows / r.ours.median_s:,.0f} | {r.megabytes / r.ours.median_s:.1f} | "
                     f"{r.peer.cell()} | {r.rows / r.peer.median_s:,.0f} | {r.megabytes / r.peer.median_s:.1f} | "
                     f"{r.peer.median_s / r.ours.median_s:.0%} | {r.server_peak_rss_mb:,.0f} |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    results = []
    for rows in sizes:
        results.append(measure(rows, args.reps))
        print(f"ingest: {rows} rows done", file=sys.stderr)
    text = table_text(results)
    write_fragment("ingest", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
