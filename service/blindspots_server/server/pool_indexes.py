"""Keep each pool's faiss index loaded, current with its rows, and persisted.

With ``shards`` > 1 a pool's index is a :class:`core.sharded_index.ShardedPoolIndex`
whose shards live where ``compute`` puts them (Ray actors with --ray-address);
it is rebuilt from the row files when a server first needs it, not persisted.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ..core.parallel import IN_PROCESS
from ..core.pool_index import PoolIndex
from ..core.sharded_index import ShardedPoolIndex
from ..core.results import ProgressFn, no_progress
from ..storage import Store


class PoolIndexes:
    def __init__(self, store: Store, shards: int = 1, compute=None):
        self._store = store
        self._shards, self._compute = max(1, shards), compute or IN_PROCESS
        self._loaded: dict[str, PoolIndex | ShardedPoolIndex] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, pool_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(pool_id, threading.Lock())

    def ensure(self, pool_id: str, embeddings: np.ndarray, progress: Optional[ProgressFn] = None,
               owned: bool = False) -> PoolIndex:
        """The pool's index covering every row of ``embeddings`` (all pool rows, in order).

        ``owned``: the caller no longer needs ``embeddings``, so a build may normalise
        them in place instead of holding a normalised copy next to them."""
        progress = progress or no_progress
        if self._shards > 1:
            return self._ensure_sharded(pool_id, embeddings, progress)
        with self._lock(pool_id):
            index = self._loaded.get(pool_id)
            if index is None:
                blob = self._store.load_index(pool_id)
                if blob is not None:
                    index = PoolIndex.from_bytes(blob)
            n = len(embeddings)
            if index is not None and index.ntotal == n:
                self._loaded[pool_id] = index
                return index
            built = index.ntotal if index is not None else 0
            # Growth is PoolIndex.add's business: it re-chooses and retrains the
            # structure once the pool has outgrown what it was built for.
            if index is None or built > n:
                progress(0.0, f"building index over {n} pool rows")
                index = PoolIndex(embeddings.shape[1]).build(embeddings, progress=progress, copy=not owned)
            else:
                progress(0.0, f"adding {n - built} rows to the index")
                index.add(embeddings[built:])
            self._store.save_index(pool_id, index.to_bytes(), index.kind_, index.ntotal, index.description)
            self._loaded[pool_id] = index
            return index

    def _ensure_sharded(self, pool_id: str, embeddings: np.ndarray, progress: ProgressFn) -> ShardedPoolIndex:
        with self._lock(pool_id):
            index = self._loaded.get(pool_id)
            n = len(embeddings)
            if index is not None and index.ntotal == n:
                return index
            if index is not None and index.ntotal < n:
                progress(0.0, f"adding {n - index.ntotal} rows to the last index shard")
                index.add(embeddings[index.ntotal:])
                return index
            if index is not None:
                index.close()
            index = ShardedPoolIndex(embeddings.shape[1], self._shards, compute=self._compute)
            self._loaded[pool_id] = index.build(embeddings, progress)
            return index

    def loaded(self) -> dict[str, int]:
        """Rows per loaded index (for metrics)."""
        with self._guard:
            return {k: v.ntotal for k, v in self._loaded.items()}
