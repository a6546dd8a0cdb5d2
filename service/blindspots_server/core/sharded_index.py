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
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .parallel import IN_PROCESS, row_chunks
from .pool_index import PoolIndex
from .results import ProgressFn, no_progress


class PoolIndexShard:
    """One shard's index; a worker (an object here, a Ray actor on a cluster)."""

    def __init__(self, dim: int, kind: str, embeddings: np.ndarray, offset: int):
        self.offset = int(offset)
        self.index = PoolIndex(dim, kind=kind).build(embeddings)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, ids = self.index.search(queries, k)
        return dist, np.where(ids >= 0, ids + self.offset, -1)

    def add(self, embeddings: np.ndarray) -> int:
        self.index.add(embeddings)
        return self.index.ntotal

    def describe(self) -> tuple[int, str, str]:
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

    def close(self) -> None:
        if self._workers:
            self.compute.stop_workers(self._workers)
        self._workers, self._sizes = [], []
