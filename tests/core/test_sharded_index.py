"""ShardedPoolIndex in one process: shards that read their own rows from a row source answer as
shards given the rows, and exact_search over the sources is the brute-force answer."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from blindspots_server.core.pool_index import PoolIndex
from blindspots_server.core.sharded_index import RowRange, ShardedPoolIndex
from blindspots_server.storage import DataLoss
from blindspots_server.storage.rows import ParquetEmbeddings, build_table


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (30, dim)) * 3
    return (means[rng.integers(0, 30, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


class CountingRows:
    """An in-memory row source that records the largest range it was asked for."""

    def __init__(self, x: np.ndarray):
        self.x, self.largest = x, 0

    def __len__(self) -> int:
        return len(self.x)

    def read(self, start: int, stop: int) -> np.ndarray:
        self.largest = max(self.largest, stop - start)
        return self.x[start:stop]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_shards_reading_their_rows_answer_as_shards_given_them(kind, monkeypatch):
    from blindspots_server.core import pool_index as pi
    monkeypatch.setattr(pi, "BUILD_CHUNK", 2000)
    x = clustered(12_000)
    queries = clustered(100, seed=1)
    source = CountingRows(x)
    streamed = ShardedPoolIndex(16, shards=3, kind=kind).build_from(source)
    given = ShardedPoolIndex(16, shards=3, kind=kind).build(x)
    assert streamed.ntotal == 12_000 and streamed.description == given.description
    d1, i1 = streamed.search(queries, 10)
    d2, i2 = given.search(queries, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, atol=1e-6)
    assert source.largest <= 2000        # chunks, never a shard's 4,000 rows at once


def test_exact_search_over_the_sources_is_one_flat_index():
    x = clustered(9000)
    queries = clustered(50, seed=2)
    sharded = ShardedPoolIndex(16, shards=2, kind="ivf").build_from(CountingRows(x))
    d_exact, i_exact = sharded.exact_search(queries, 10)
    d_flat, i_flat = PoolIndex(16, kind="flat").build(x).search(queries, 10)
    np.testing.assert_array_equal(i_exact, i_flat)
    np.testing.assert_allclose(d_exact, d_flat, atol=1e-5)
    sharded.add(x[:10])                 # rows the sources do not have: no longer an exact answer
    with pytest.raises(ValueError, match="row source"):
        sharded.exact_search(queries, 10)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfsq8"])
def test_vectors_are_the_rows_as_the_shards_hold_them(kind):
    from blindspots_server.core.pool_index import normalise
    x = clustered(6000)
    rows = np.array([5999, 0, 3001, 2999, 3000, 17, 17])
    sharded = ShardedPoolIndex(16, shards=2, kind=kind).build(x)
    one = PoolIndex(16, kind=kind).build(x)
    got = sharded.vectors(rows)
    assert got.shape == (7, 16) and one.vectors(rows).shape == (7, 16)
    if kind in ("flat", "ivf"):          # exact rows
        np.testing.assert_allclose(got, normalise(x[rows]), atol=1e-6)
        np.testing.assert_allclose(one.vectors(rows), normalise(x[rows]), atol=1e-6)
    else:                                # decoded one-byte codes: close, not equal
        assert np.abs(got - normalise(x[rows])).max() < 0.05
        assert not np.allclose(got, normalise(x[rows]), atol=1e-6)
    assert sharded.vectors(np.zeros(0, np.int64)).shape == (0, 16)
    sharded.add(x[:3])                   # added rows are readable too
    np.testing.assert_allclose(sharded.vectors([6001]), normalise(x[1:2]), atol=1e-6 if kind != "ivfsq8" else 0.05)
    with pytest.raises(IndexError):
        sharded.vectors([6003])
    with pytest.raises(IndexError):
        one.vectors([-1])


def test_parquet_embeddings_read_ranges_across_files_and_row_groups(tmp_path):
    x = clustered(2500)
    paths = []
    for i, (a, b) in enumerate([(0, 1000), (1000, 1700), (1700, 2500)]):
        table = build_table([f"s{j}" for j in range(a, b)], x[a:b], None, None, None, {})
        path = tmp_path / f"batch-{i}.parquet"
        pq.write_table(table, path, row_group_size=300)
        paths.append(str(path))
    rows = ParquetEmbeddings(paths)
    assert len(rows) == 2500
    for start, stop in [(0, 10), (250, 1350), (999, 1001), (1600, 2500), (0, 2500), (7, 7)]:
        np.testing.assert_array_equal(rows.read(start, stop), x[start:stop])
    shard = RowRange(pickle.loads(pickle.dumps(rows)), 1200, 2100)     # what a remote shard gets
    np.testing.assert_array_equal(shard.read(100, 400), x[1300:1600])
    assert len(pickle.dumps(rows)) < 2000        # the description travels, not the rows
    with pytest.raises(IndexError):
        rows.read(2000, 2600)
    index = ShardedPoolIndex(16, shards=2, kind="flat").build_from(rows)
    np.testing.assert_array_equal(index.search(x[:20], 5)[1], PoolIndex(16, kind="flat").build(x).search(x[:20], 5)[1])


def _batches(tmp_path, x: np.ndarray, bounds: list[tuple[int, int]], tag: str = "") -> list[str]:
    paths = []
    for a, b in bounds:
        path = tmp_path / f"batch-{a}-{b}{tag}.parquet"
        pq.write_table(build_table([f"s{j}" for j in range(a, b)], x[a:b], None, None, None, {}), path,
                       row_group_size=400)
        paths.append(str(path))
    return paths


def test_shared_shards_are_kept_grown_from_the_files_or_built_anew_when_the_files_differ(tmp_path):
    """SharedShards: the same rows keep the shards; more rows in the same files go to the last shard,
    which reads them itself; a caller that counted fewer rows gets a handle that never answers with
    a row past its count; row files that are not those it was built from (a repaired store) build
    the shards anew; a failed read leaves no shards behind."""
    from blindspots_server.core.sharded_index import SharedShards
    x = clustered(3000, seed=4)
    flat = lambda rows: PoolIndex(16, kind="flat").build(x[:rows])  # noqa: E731
    paths = _batches(tmp_path, x, [(0, 1000), (1000, 2000), (2000, 3000)])
    shared = SharedShards(16, 2, kind="flat")
    first = shared.ensure(RowRange(ParquetEmbeddings(paths[:2]), 0, 1500))
    assert (first.action, first.sizes, first.builds) == ("built", [750, 750], 1)
    again = shared.ensure(RowRange(ParquetEmbeddings(paths[:2]), 0, 1500))
    assert (again.action, again.workers, again.builds) == ("kept", first.workers, 1)
    grown = shared.ensure(ParquetEmbeddings(paths))
    assert (grown.action, grown.sizes, grown.builds) == ("extended", [750, 2250], 1)
    index = ShardedPoolIndex.attach(16, grown, 3000)
    q = x[::97] + 0.01
    np.testing.assert_array_equal(index.search(q, 6)[1], flat(3000).search(q, 6)[1])
    np.testing.assert_array_equal(index.exact_search(q, 6)[1], flat(3000).search(q, 6)[1])
    # A caller that counted 1200 rows: the same shards, answering for their first 1200 rows only.
    fewer = shared.ensure(RowRange(ParquetEmbeddings(paths[:2]), 0, 1200))
    assert fewer.action == "kept"
    view = ShardedPoolIndex.attach(16, fewer, 1200)
    near_later_rows = x[1200:1300] + 0.01
    d, i = view.search(near_later_rows, 8)
    d_flat, i_flat = flat(1200).search(near_later_rows, 8)
    np.testing.assert_array_equal(i, i_flat)
    np.testing.assert_allclose(d, d_flat, atol=1e-5)
    assert view.ntotal == 1200 and i.max() < 1200
    with pytest.raises(ValueError, match="shared shards grow"):
        view.add(x[:3])
    # The second file rewritten (a store repaired): another file name, so the shards are built anew.
    repaired = [paths[0], *_batches(tmp_path, x, [(1000, 2000)], tag="-repaired"), paths[2]]
    rebuilt = shared.ensure(ParquetEmbeddings(repaired))
    assert (rebuilt.action, rebuilt.sizes, rebuilt.builds) == ("built", [1500, 1500], 2)
    # A file gone before the last shard reads its new rows: the error reaches the caller, and
    # no half-grown shards stay (the next call builds).
    more = _batches(tmp_path, clustered(3500, seed=4), [(3000, 3500)])
    source = ParquetEmbeddings([*repaired, *more])
    os.remove(more[0])
    with pytest.raises(DataLoss):
        shared.ensure(source)
    assert shared.describe() == ([], 2)
    assert shared.ensure(ParquetEmbeddings(repaired)).action == "built"


def test_shared_indexes_past_their_memory_cap_stop_the_least_recently_asked_for_shards(tmp_path):
    """SharedIndexes.ensure with memory_bytes: the shards asked for least recently go until the rest fit
    (never the shards just asked for); a pool whose shards went is built again, with the same answers,
    when next asked for; without a cap nothing goes."""
    from blindspots_server.core.sharded_index import SharedIndexes
    x = {name: clustered(2000, seed=seed) for seed, name in enumerate("abc")}
    sources = {name: ParquetEmbeddings(_batches(tmp_path, rows, [(0, 2000)], tag=f"-{name}"))
               for name, rows in x.items()}
    one = PoolIndex(16, kind="flat").build(x["a"]).nbytes       # each pool's two flat shards: 2000 x 16 x 4
    shared = SharedIndexes()
    for name in "abc":
        state = shared.ensure(name, 16, 2, sources[name])
        assert (state.action, state.evicted) == ("built", ())
    assert shared.keys() == ["a", "b", "c"] and shared.held_bytes() == 3 * one

    q = x["a"][::50] + 0.01
    before = ShardedPoolIndex.attach(16, shared.ensure("a", 16, 2, sources["a"]), 2000).search(q, 5)[1]
    # "a" was asked for last: a cap that holds two pools stops "b", the least recently asked for.
    kept = shared.ensure("c", 16, 2, sources["c"], memory_bytes=2 * one)
    assert (kept.action, kept.evicted, kept.held_bytes) == ("kept", ("b",), 2 * one)
    assert shared.keys() == ["a", "c"] and shared.describe("b") is None
    # A cap below one pool keeps the pool asked for and stops every other one.
    alone = shared.ensure("b", 16, 2, sources["b"], memory_bytes=one // 2)
    assert (alone.action, alone.builds, set(alone.evicted)) == ("built", 1, {"a", "c"})
    assert shared.keys() == ["b"] and alone.held_bytes == one
    again = shared.ensure("a", 16, 2, sources["a"], memory_bytes=one)
    assert (again.action, again.evicted) == ("built", ("b",))
    np.testing.assert_array_equal(ShardedPoolIndex.attach(16, again, 2000).search(q, 5)[1], before)

    # Shards being built or grown (their key's lock held by another call) are passed over.
    shared.ensure("b", 16, 2, sources["b"])
    busy = shared._lock("a")
    with busy:
        passed = shared.ensure("c", 16, 2, sources["c"], memory_bytes=one)
    assert passed.evicted == ("b",) and shared.keys() == ["a", "c"]
    assert shared.ensure("c", 16, 2, sources["c"]).evicted == ()            # no cap: nothing goes
    assert shared.held_bytes() == 2 * one
