"""The server's pool indexes over a real embedded store: sharded, each shard reads its rows from the
pool's row files (Store.row_files), grows with new batches, and answers as one flat index."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from blindspots_server.core.pool_index import PoolIndex
from blindspots_server.core.sharded_index import ShardedPoolIndex
from blindspots_server.server.pool_indexes import PoolIndexes
from blindspots_server.storage import DataLoss, NotFound, PoolRecord, open_store
from blindspots_server.storage.rows import build_table


def _add(store, batch_id: str, x: np.ndarray, first: int) -> None:
    ids = [f"s{first + i}" for i in range(len(x))]
    store.ingest_batch("pool", "pool_a", batch_id, build_table(ids, x, None, None, None, {}), {})


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "data"))
    store.create_pool(PoolRecord(id="pool_a", name="p", project="p", embedding_dim=16, num_classes=0,
                                 created_at=time.time()))
    yield store
    store.close()


def test_sharded_pool_index_reads_the_row_files_and_grows_with_new_batches(store):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5000, 16)).astype(np.float32)
    for i, (a, b) in enumerate([(0, 1300), (1300, 2600), (2600, 4000)]):
        _add(store, f"b{i}", x[a:b], a)
    indexes = PoolIndexes(store, shards=3)
    index = indexes.update("pool_a")
    assert isinstance(index, ShardedPoolIndex) and index.ntotal == 4000
    queries = rng.normal(size=(40, 16)).astype(np.float32)
    np.testing.assert_array_equal(index.exact_search(queries, 8)[1],       # shards that re-read their files
                                  PoolIndex(16, kind="flat").build(x[:4000]).search(queries, 8)[1])
    _add(store, "b3", x[4000:], 4000)
    grown = indexes.update("pool_a")                # only the new batch's rows go to the last shard
    assert grown.ntotal == 5000 and grown.builds == index.builds == 1       # grown, not built again
    np.testing.assert_array_equal(grown.search(queries, 8)[1],
                                  PoolIndex(16, kind="flat").build(x).search(queries, 8)[1])
    np.testing.assert_array_equal(grown.exact_search(queries, 8)[1],       # the last shard read the new rows
                                  PoolIndex(16, kind="flat").build(x).search(queries, 8)[1])
    # A caller that counted fewer rows (a batch committed since) gets an index over those rows only:
    # built for it, or the same shards answering for their first rows.
    fresh = PoolIndexes(store, shards=2).ensure_at("pool_a", 4500)
    assert fresh.ntotal == 4500 and fresh.search(x[4400:4401], 1)[1][0, 0] == 4400
    fewer = indexes.ensure_at("pool_a", 4500)
    assert fewer.ntotal == 4500 and fewer.builds == 1
    near_new_rows = x[4500:4540] + 0.01 * rng.normal(size=(40, 16)).astype(np.float32)
    d, i = fewer.search(near_new_rows, 8)
    d_flat, i_flat = PoolIndex(16, kind="flat").build(x[:4500]).search(near_new_rows, 8)
    np.testing.assert_array_equal(i, i_flat)
    np.testing.assert_allclose(d, d_flat, atol=1e-5)
    assert indexes.ensure_at("pool_a", 5000).builds == 1


def test_a_row_file_gone_missing_is_data_loss(store):
    _add(store, "b0", np.ones((50, 16), np.float32), 0)
    for f in store.row_files("pool", "pool_a"):
        Path(f.location).unlink()           # the embedded store lists absolute paths
    with pytest.raises(DataLoss, match="pool 'pool_a'"):
        PoolIndexes(store, shards=2).update("pool_a")


def test_an_index_saved_just_before_its_pool_is_deleted_is_not_kept(store, monkeypatch):
    _add(store, "b0", np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32), 0)
    indexes = PoolIndexes(store)
    save = store.save_index

    def save_then_delete(*args):
        save(*args)
        store.delete("pool", "pool_a")          # a DeletePool landing between the save and the keep
        indexes.forget("pool_a")
    monkeypatch.setattr(store, "save_index", save_then_delete)
    with pytest.raises(NotFound, match="'pool_a' was deleted"):
        indexes.update("pool_a")
    assert indexes.loaded() == {}
