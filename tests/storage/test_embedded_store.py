"""What only the embedded store does: its directory layout, crash debris, its row-cache bound.

The behaviour every backend shares is in test_store_contract.py."""
from __future__ import annotations

import time

import numpy as np

from blindspots_server.storage import EmbeddedStore, RunRecord
from blindspots_server.storage.rows import build_table, to_row_data


def _run(store: EmbeddedStore, dim: int = 4) -> RunRecord:
    return store.create_run(RunRecord(id="run_a", name="a", project="p", model_name="m", model_version="1",
                                      dataset_name="d", class_names=["x", "y"], embedding_dim=dim,
                                      created_at=time.time()))


def _batch(ids, dim=4, meta=None):
    n = len(ids)
    return build_table(list(ids), np.arange(n * dim, dtype=np.float32).reshape(n, dim), np.zeros(n),
                       np.full((n, 2), 0.5, np.float32), None, meta or {})


def test_reopen_quarantines_uncommitted_files_and_keeps_committed(tmp_path):
    store = EmbeddedStore(tmp_path)
    _run(store)
    store.ingest_batch("run", "run_a", "b1", _batch(["a"]), {})
    store.close()
    # Debris a crash can leave: a renamed file with no catalog row, and a temp file.
    (tmp_path / "runs" / "run_a" / "part-00000002-deadbeef.parquet").write_bytes(b"partial")
    (tmp_path / "tmp" / "x.parquet").write_bytes(b"partial")
    store = EmbeddedStore(tmp_path)
    assert [p.name for p in (tmp_path / "runs" / "run_a").iterdir()] != []
    assert not (tmp_path / "runs" / "run_a" / "part-00000002-deadbeef.parquet").exists()
    assert not any((tmp_path / "tmp").iterdir())
    assert list((tmp_path / "quarantine").rglob("part-00000002-deadbeef.parquet"))   # moved aside, not deleted
    assert to_row_data(store.read_rows("run", "run_a")).sample_ids.tolist() == ["a"]


def test_row_cache_is_bounded_in_bytes(tmp_path):
    store = EmbeddedStore(tmp_path, cache_bytes=10_000)
    _run(store, dim=64)
    store.ingest_batch("run", "run_a", "b1", _batch([f"s{i}" for i in range(100)], dim=64), {})
    first = store.read_rows("run", "run_a")
    assert first.nbytes > 10_000
    assert not store._cache, "a table over the byte bound is read, not kept"
    assert store.read_rows("run", "run_a").equals(first)
    small = EmbeddedStore(tmp_path / "other", cache_bytes=1 << 30)
    _run(small, dim=64)
    small.ingest_batch("run", "run_a", "b1", _batch(["a"], dim=64), {})
    assert small.read_rows("run", "run_a") is small.read_rows("run", "run_a")
