"""index_memory_mb: a server holding many pools' indexes lets the least recently used go past the
limit, and loads them from the store (not rebuilt) when next needed, with the same picks."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from blindspots import Client
from blindspots_server.core.pool_index import PoolIndex

from conftest import free_port, index_builds_done, metric_sample, metrics_text, start_server

DIM = 64
ROWS = 3000          # Flat: 3000 x 64 x 4 bytes = 0.73 MiB a pool


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfsq8", "hnsw"])
def test_an_index_s_estimated_memory_is_near_its_serialised_size(kind):
    x = np.random.default_rng(1).normal(size=(20_000, 32)).astype(np.float32)
    index = PoolIndex(32, kind=kind).build(x)
    ratio = index.nbytes / len(index.to_bytes())
    assert 0.75 <= ratio <= 1.35, (kind, index.nbytes, len(index.to_bytes()))


def test_past_index_memory_mb_the_least_recently_used_index_goes_and_comes_back_from_the_store(
        tmp_path, caplog):
    rng = np.random.default_rng(4)
    server = start_server(tmp_path / "data", index_memory_mb=1, metrics_port=free_port())
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    caplog.set_level(logging.INFO, logger="blindspots.server")
    try:
        test_x = rng.normal(size=(200, DIM)).astype(np.float32)
        run = client.create_run("eval", class_names=["a", "b"], embedding_dim=DIM)
        run.log_predictions([f"t{i}" for i in range(200)], test_x, labels=rng.integers(0, 2, 200),
                            probabilities=rng.dirichlet([1, 1], 200), progress=False)
        pools = []
        for name in ("first", "second"):
            pool = client.create_pool(name, embedding_dim=DIM)
            pool.add([f"{name}{i}" for i in range(ROWS)], rng.normal(size=(ROWS, DIM)).astype(np.float32),
                     progress=False)
            pools.append(pool)
        index_builds_done(server, 2)
        first, second = pools

        def like(pool) -> list[str]:
            return client.suggest(run.id, pool.id, 50, strategy="similar", query_ids=["t0", "t1", "t2"],
                                  allow_repeats=True, progress=False)["sample_id"].tolist()
        picks_first = like(first)                # the first pool's index is the one used last
        indexes = server.servicer.indexes
        assert set(indexes.loaded()) == {first.id}
        one = indexes.loaded_index(first.id).nbytes
        assert one > 0.7 * (1 << 20) and 2 * one > (1 << 20)         # two do not fit, one does
        text = metrics_text(server)
        assert metric_sample(text, "blindspots_pool_index_memory_bytes") == one
        evicted = metric_sample(text, "blindspots_pool_index_evictions_total")
        assert evicted >= 1

        caplog.clear()
        like(second)                             # the second comes back; the first goes
        assert set(indexes.loaded()) == {second.id}
        assert f"pool {second.id}: its index ({ROWS} rows) loaded from the store" in caplog.text
        assert "building its index" not in caplog.text
        assert metric_sample(metrics_text(server), "blindspots_pool_index_evictions_total") == evicted + 1
        caplog.clear()
        assert like(first) == picks_first        # loaded, not rebuilt: the same index, the same picks
        assert f"pool {first.id}: its index ({ROWS} rows) loaded from the store" in caplog.text
        assert "building its index" not in caplog.text
    finally:
        client.close()
        server.stop()


def test_without_a_limit_every_index_stays(tmp_path):
    rng = np.random.default_rng(5)
    server = start_server(tmp_path / "data", metrics_port=free_port())
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    try:
        ids = []
        for name in ("first", "second"):
            pool = client.create_pool(name, embedding_dim=DIM)
            pool.add([f"{name}{i}" for i in range(ROWS)], rng.normal(size=(ROWS, DIM)).astype(np.float32),
                     progress=False)
            ids.append(pool.id)
        index_builds_done(server, 2)
        assert set(server.servicer.indexes.loaded()) == set(ids)
        assert metric_sample(metrics_text(server), "blindspots_pool_index_evictions_total") == 0
    finally:
        client.close()
        server.stop()
