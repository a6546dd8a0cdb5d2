"""A pool index split into row shards, each a :class:`.pool_index.PoolIndex` held by a worker,
searched in parallel and merged into one top-k.

Shard s holds pool rows [offset_s, offset_s + n_s); its worker answers with
global row ids, so the merge is a sort of the shards' k candidates per query
by (distance, row id) — the same order a single index gives, and with exact
(Flat) shards the very same answer. With IVF shards each shard is trained on
its own rows, so recall is per shard, never below a single IVF of that size.

The workers run where ``compute`` puts them (:mod:`.parallel`): here, or as Ray
actors spread over a cluster's nodes, so a pool bigger than one process's
memory is held by several.

Two ways to give the shards their rows: ``build(embeddings)`` slices an array
the caller holds and ships each shard its slice; ``build_from(source)`` ships
only a description of where the rows are (a :class:`RowSource`: row files, a
generator with a seed), and each shard reads its own range, a chunk at a
time, so neither the caller nor a shard ever holds the whole pool.
"""
from __future__ import annotations

from typing import Any, Optional, Protocol

import faiss
import numpy as np

from .parallel import IN_PROCESS, row_chunks
from .pool_index import BUILD_CHUNK, PoolIndex, normalise
from .results import ProgressFn, no_progress


class RowSource(Protocol):
    """Pool rows a worker can read by itself: small to pickle (paths, a seed), never the rows."""

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop as a float32 (stop - start, dim) array."""


class RowRange:
    """Rows ``start..stop`` of a :class:`RowSource`, themselves a row source (one shard's rows)."""

    def __init__(self, source: RowSource, start: int, stop: int):
        self.source, self.start, self.stop = source, int(start), int(stop)

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.source.read(self.start + start, self.start + stop)


class PoolIndexShard:
    """One shard's index; a worker (an object here, a Ray actor on a cluster).

    ``rows`` is the shard's rows as an array, or a :class:`RowSource` it reads a
    chunk at a time (and again for :meth:`exact_search`).
    """

    def __init__(self, dim: int, kind: str, rows: "np.ndarray | RowSource", offset: int):
        self.offset = int(offset)
        self.dim = int(dim)
        self.source = None if isinstance(rows, np.ndarray) else rows
        # A source that fails to read (damaged files: the store's DataLoss) fails the first call,
        # describe(), instead of the constructor: a Ray actor's constructor error reaches the caller
        # as text only (ActorDiedError), a method's as the exception itself.
        self.failure: Optional[Exception] = None
        if self.source is None:
            self.index = PoolIndex(dim, kind=kind).build(rows)
        else:
            try:
                self.index = PoolIndex(dim, kind=kind).build_from(self.source.read, len(self.source))
            except Exception as exc:
                self.failure = exc

    def exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top-k over the shard's rows, re-read from its source (for measuring recall)."""
        if self.source is None or self.index.ntotal != len(self.source):
            raise ValueError("exact_search needs a shard built from a row source, with no rows added since")
        q = normalise(queries)
        dists, ids = [], []
        rows = len(self.source)
        for start in range(0, rows, BUILD_CHUNK * 8):
            chunk = normalise(self.source.read(start, min(rows, start + BUILD_CHUNK * 8)))
            flat = faiss.IndexFlatIP(self.dim)
            flat.add(chunk)
            sims, found = flat.search(q, min(k, len(chunk)))
            dists.append(np.maximum(1.0 - sims, 0.0).astype(np.float32))
            ids.append(np.where(found >= 0, found + start + self.offset, -1))
        return merge_top_k(dists, ids, k)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, ids = self.index.search(queries, k)
        return dist, np.where(ids >= 0, ids + self.offset, -1)

    def vectors(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of global ``rows``, the positions this shard holds and those rows as its index holds them."""
        rows = np.asarray(rows, dtype=np.int64)
        mine = np.flatnonzero((rows >= self.offset) & (rows < self.offset + self.index.ntotal))
        return mine, self.index.vectors(rows[mine] - self.offset)

    def add(self, embeddings: np.ndarray) -> int:
        self.index.add(embeddings)
        return self.index.ntotal

    def describe(self) -> tuple[int, str, str]:
        if self.failure is not None:
            raise self.failure
        return self.index.ntotal, self.index.kind_, self.index.description

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the process holding this shard (Linux; NaN elsewhere)."""
        try:
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            return float("nan")


def merge_top_k(dists: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k best of the shards' candidates, ordered by (distance, row id); -1 / inf pads."""
    dist, idx = np.hstack(dists), np.hstack(ids)
    order = np.lexsort((np.where(idx >= 0, idx, np.iinfo(np.int64).max), dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


class ShardedPoolIndex:
    def __init__(self, dim: int, shards: int = 2, kind: str = "auto", compute: Optional[Any] = None):
        self.dim, self.shards, self.kind = int(dim), int(shards), kind
        self.compute = compute or IN_PROCESS
        self._workers: list = []
        self._sizes: list[int] = []

    def build(self, embeddings: np.ndarray, progress: Optional[ProgressFn] = None) -> "ShardedPoolIndex":
        progress = progress or no_progress
        x = np.asarray(embeddings, dtype=np.float32)
        ranges = row_chunks(len(x), self.shards)
        progress(0.0, f"building {len(ranges)} index shards on {self.compute.name}")
        self.close()
        self._workers = self.compute.start_workers(
            PoolIndexShard, [(self.dim, self.kind, x[a:b], a) for a, b in ranges])
        self._sizes = [b - a for a, b in ranges]
        described = self.compute.call_all(self._workers, "describe")     # waits for the builds
        self.kind_, self.description = described[0][1], f"{len(ranges)} shards of {described[0][2]}"
        progress(1.0, "index shards built")
        return self

    def build_from(self, source: RowSource, progress: Optional[ProgressFn] = None) -> "ShardedPoolIndex":
        """Build with each shard reading its own row range from ``source`` (nothing is shipped but the source)."""
        progress = progress or no_progress
        ranges = row_chunks(len(source), self.shards)
        progress(0.0, f"building {len(ranges)} index shards from their row sources on {self.compute.name}")
        self.close()
        self._workers = self.compute.start_workers(
            PoolIndexShard, [(self.dim, self.kind, RowRange(source, a, b), a) for a, b in ranges])
        self._sizes = [b - a for a, b in ranges]
        described = self.compute.call_all(self._workers, "describe")
        self.kind_, self.description = described[0][1], f"{len(ranges)} shards of {described[0][2]}"
        progress(1.0, "index shards built")
        return self

    def exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over every shard's rows (re-read from their sources), merged: the exact answer."""
        q = np.asarray(queries, dtype=np.float32)
        answers = self.compute.call_all(self._workers, "exact_search", q, int(k))
        return merge_top_k([a[0] for a in answers], [a[1] for a in answers], int(k))

    def add(self, embeddings: np.ndarray) -> None:
        """New rows go to the last shard (row ids stay contiguous)."""
        x = np.asarray(embeddings, dtype=np.float32)
        if len(x):
            self._sizes[-1] = self.compute.call_all(self._workers[-1:], "add", x)[0]

    @property
    def ntotal(self) -> int:
        return int(sum(self._sizes))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = np.asarray(queries, dtype=np.float32)
        answers = self.compute.call_all(self._workers, "search", q, int(k))
        return merge_top_k([a[0] for a in answers], [a[1] for a in answers], int(k))

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Pool rows ``rows`` as the shards' indexes hold them (see :meth:`PoolIndex.vectors`), in order;
        each shard sends only its own rows, so the caller never needs the pool."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.ntotal):
            raise IndexError(f"rows outside 0..{self.ntotal}")
        out = np.zeros((len(rows), self.dim), np.float32)
        if len(rows):
            for at, x in self.compute.call_all(self._workers, "vectors", rows):
                out[at] = x
        return out

    def close(self) -> None:
        if self._workers:
            self.compute.stop_workers(self._workers)
        self._workers, self._sizes = [], []
