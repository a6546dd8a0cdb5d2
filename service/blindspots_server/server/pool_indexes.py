"""Keep each pool's faiss index loaded, current with its rows, and persisted.

In one process a pool's index is a :class:`core.pool_index.PoolIndex`, built or updated from
the pool's row files a chunk at a time (``ensure_at``; the caller need not hold the rows) and
saved to the store. With ``shards`` > 1 it is a :class:`core.sharded_index.ShardedPoolIndex`
whose shards live where ``compute`` puts them (Ray actors with --ray-address).
A :class:`core.sharded_index.SharedIndexes` keeps them: on Ray one named,
detached actor of the cluster (``blindspots-pool-indexes``), so every server of
the cluster uses the same shards and a restarted server finds them again (they
last as long as the cluster, or until the pool is deleted); it builds a pool's
shards when the first server needs them, and lets the last shard read the rows
added since. Each shard reads its own rows from the pool's
row files (``Store.row_files``), so the server never holds the pool's vectors for
the build. Where the shards cannot open those files (an embedded store on the
server's own disk, a Ray node without the shared mount), the server reads the
rows and ships each shard its slice, as before, and says so in its log; such
shards are this server's own.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from typing import Callable, Optional


from ..core.parallel import IN_PROCESS, WorkerLost, WorkersUnplaceable
from ..core.pool_index import GpuUnavailable, PoolIndex
from ..core.sharded_index import RowRange, ShardedPoolIndex, SharedIndexes, ShardsState, row_locations
from ..core.results import ProgressFn, no_progress
from ..storage import DataLoss, NotFound, Store
from ..storage.rows import ParquetEmbeddings
from .jobs import JobCancelled

log = logging.getLogger("blindspots.server")


SHARED_NAME = "blindspots-pool-indexes"       # the cluster's SharedIndexes actor
SHARED_THREADS = 16                          # its calls served at a time (for different pools)


def shared_key(pool_id: str, shards: int, source: "ParquetEmbeddings | RowRange") -> str:
    """A pool's shards among the cluster's shared ones: the pool, the number of shards, and a
    digest of where its first row file lies (two stores holding copies of one pool, with the same
    pool id, do not share their shards). Every key of a pool starts with ``pool_id + ":"``."""
    first = (row_locations(source) or [""])[:1]
    digest = hashlib.sha256("\n".join(first).encode()).hexdigest()[:16]
    return f"{pool_id}:{shards}:{digest}"


class PoolIndexes:
    """The pools' indexes this server holds. ``memory_bytes`` > 0 caps the in-process ones (their
    estimated :attr:`PoolIndex.nbytes`, in all): past it, the least recently used are let go after
    each index is kept (never the one just asked for), and loaded from the store again when next
    needed; ``on_evict(pool_id)`` is told of each. ``shard_memory_bytes`` > 0 caps the shared shards
    (every pool's, on the cluster): past it, :class:`SharedIndexes` stops the least recently asked-for
    pools' shards, built again from the row files when next needed; ``on_shards(evicted, held_bytes)``
    is told what each ask for shards reported."""

    def __init__(self, store: Store, shards: int = 1, compute=None, memory_bytes: int = 0,
                 on_evict: Optional[Callable[[str], None]] = None, shard_memory_bytes: int = 0,
                 on_shards: Optional[Callable[[int, int], None]] = None):
        self._store = store
        self._shards, self._compute = max(1, shards), compute or IN_PROCESS
        self._memory_bytes, self._on_evict = max(0, int(memory_bytes)), on_evict
        self._shard_memory_bytes, self._on_shards = max(0, int(shard_memory_bytes)), on_shards
        # Least recently kept first: _keep puts an index back at the end, so eviction reads the order.
        self._loaded: dict[str, PoolIndex | ShardedPoolIndex] = {}
        self._shared = None             # the SharedIndexes (an object here, the cluster's actor on Ray)
        self._locks: dict[str, threading.Lock] = {}
        self._refused: dict[str, str] = {}        # why faiss-gpu refused a pool's index, as last logged
        self._guard = threading.Lock()

    @property
    def shards(self) -> int:
        """Shards per pool index (1: one in-process index)."""
        return self._shards

    @property
    def sharded(self) -> bool:
        """Whether pool indexes are sharded (their shards hold the pool's vectors, not this process)."""
        return self._shards > 1

    def ensure_at(self, pool_id: str, n: int, progress: Optional[ProgressFn] = None
                  ) -> "PoolIndex | ShardedPoolIndex":
        """The index over the pool's first ``n`` rows, for a caller that holds none of them: the rows
        a build or an update needs are read from the row files, a chunk at a time (by the shards
        themselves when sharded), so the pool's vectors are never held here beside the index."""
        progress = progress or no_progress
        if self._shards > 1:
            return self._ensure_sharded(pool_id, n, progress)
        return self._ensure_local(pool_id, n, progress)

    def _lock(self, pool_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(pool_id, threading.Lock())

    def update(self, pool_id: str, progress: Optional[ProgressFn] = None) -> "PoolIndex | ShardedPoolIndex":
        """The pool's index over every row the store holds now (the index-build job): its rows
        are read from the row files a chunk at a time as the index takes them (:meth:`ensure_at`)."""
        return self.ensure_at(pool_id, self._store.get_pool(pool_id).num_rows, progress)

    def _ensure_local(self, pool_id: str, n: int, progress: ProgressFn) -> PoolIndex:
        """The in-process index over the pool's first ``n`` rows, built or grown from the row files."""
        lock = self._lock(pool_id)
        with lock:
            index = self._loaded.get(pool_id)
            if index is None:
                index = self._stored(pool_id)
                if index is not None:
                    log.info("pool %s: its index (%d rows) loaded from the store", pool_id, index.ntotal)
            if index is not None and index.ntotal == n:
                self._keep(pool_id, lock, index)
                return index
            built = index.ntotal if index is not None else 0
            # Growth is PoolIndex.add's business: it re-chooses and retrains the
            # structure once the pool has outgrown what it was built for.
            if index is None or built > n:
                log.info("pool %s: building its index over %d rows", pool_id, n)
                progress(0.0, f"building index over {n} pool rows")
                index = PoolIndex(self._store.get_pool(pool_id).embedding_dim).build_from(
                    self._row_source(pool_id, n).read, n, progress=progress)
            else:
                progress(0.0, f"adding {n - built} rows to the index")
                index.add(self._row_source(pool_id, n).read(built, n))
            if index.gpu_refused_ and self._refused.get(pool_id) != index.gpu_refused_:
                # Once per pool and reason: an add to the same index keeps the refusal it had.
                log.warning("pool %s: its index stays on the CPU: %s", pool_id, index.gpu_refused_)
            self._refused[pool_id] = index.gpu_refused_
            self._store.save_index(pool_id, index.to_bytes(), index.kind_, index.ntotal, index.description)
            self._keep(pool_id, lock, index)
            return index

    def _keep(self, pool_id: str, lock: threading.Lock, index: "PoolIndex | ShardedPoolIndex") -> None:
        """Hold ``index`` as the pool's; NotFound if the pool was forgotten (deleted) since
        ``lock`` was taken: a build that saved its index just before the delete must not put
        it back."""
        with self._guard:
            kept = self._locks.get(pool_id) is lock
            if kept:
                self._loaded.pop(pool_id, None)
                self._loaded[pool_id] = index
                evicted = self._evict(keep=pool_id)
        if not kept:
            if isinstance(index, ShardedPoolIndex):
                index.close()
            raise NotFound(f"pool {pool_id!r} was deleted")
        for gone in evicted:
            log.info("pool %s: its index was let go to keep the loaded indexes under %d MiB (index_memory_mb); "
                     "it is loaded from the store when next needed", gone, self._memory_bytes // (1 << 20))
            if self._on_evict is not None:
                self._on_evict(gone)

    def _evict(self, keep: str) -> list[str]:
        """With ``_guard`` held: let go of the least recently used in-process indexes but ``keep``
        until those loaded fit ``memory_bytes``. A caller using one goes on with it; the next call
        loads it from the store, where every in-process index is saved when built or grown."""
        if not self._memory_bytes:
            return []
        local = {p: i.nbytes for p, i in self._loaded.items() if isinstance(i, PoolIndex)}
        total, evicted = sum(local.values()), []
        for pool_id in local:
            if total <= self._memory_bytes:
                break
            if pool_id == keep:
                continue
            del self._loaded[pool_id]
            total -= local[pool_id]
            evicted.append(pool_id)
        return evicted

    def loaded_bytes(self) -> int:
        """The estimated memory of the in-process indexes held now."""
        with self._guard:
            return int(sum(i.nbytes for i in self._loaded.values() if isinstance(i, PoolIndex)))

    def _stored(self, pool_id: str) -> Optional[PoolIndex]:
        """The pool's persisted index; None when there is none, or when it is damaged or
        unreadable (a checksum mismatch, a faiss build that cannot read it): an index is derived
        from the pool's rows, so the caller rebuilds it from them and the rebuilt one replaces it."""
        try:
            blob = self._store.load_index(pool_id)
            return PoolIndex.from_bytes(blob) if blob is not None else None
        except (DataLoss, RuntimeError, ValueError) as exc:     # a checksum mismatch, or faiss refusing the blob
            log.warning("pool %s: its stored index cannot be used (%s: %s); rebuilding it from the pool's rows",
                        pool_id, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return None

    def _ensure_sharded(self, pool_id: str, n: int, progress: ProgressFn) -> ShardedPoolIndex:
        """The sharded index over the pool's first ``n`` rows (those the caller counted): a handle on
        the pool's shards in :class:`SharedIndexes`, which every server of a Ray cluster shares and a restart
        finds again, or shards this server filled itself where they cannot read the row files."""
        lock = self._lock(pool_id)
        with lock:
            index = self._loaded.get(pool_id)
            if index is not None and not index.shared:
                if index.ntotal == n:
                    return index
                if index.ntotal < n:
                    progress(0.0, f"adding {n - index.ntotal} rows to the last index shard")
                    # Only the new rows pass through the server.
                    index.add(self._row_source(pool_id, n).read(index.ntotal, n))
                    return index
                index.close()
                del self._loaded[pool_id]
            dim = self._store.get_pool(pool_id).embedding_dim
            source = self._row_source(pool_id, n)     # DataLoss here is the server's own finding
            try:
                state = self._shared_state(pool_id, dim, source, progress)
            except (JobCancelled, NotFound, GpuUnavailable, WorkersUnplaceable):   # the last two: no use
                raise                                                           # building them again
            except Exception as exc:
                # A shard that cannot read the row files: on a node that does not mount the file root
                # (a missing file there is DataLoss too), or damaged. The server reads them itself,
                # which serves the rows or finds the damage (DataLoss, nothing served).
                self._drop_shared(pool_id)
                log.warning("pool %s: the index shards could not read the pool's row files (%s: %s); the "
                            "server reads the rows and sends each shard its slice instead", pool_id,
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                index = ShardedPoolIndex(dim, self._shards, compute=self._compute)
                rows = self._store.read_row_data("pool", pool_id, ["embedding"])
                try:
                    index.build(rows.embeddings[:n], progress)
                except BaseException:
                    index.close()
                    raise
                del rows
                self._keep(pool_id, lock, index)
                return index
            index = ShardedPoolIndex.attach(dim, state, n, compute=self._compute)
            self._keep(pool_id, lock, index)
            return index

    def _shared_indexes(self):
        with self._guard:
            if self._shared is None:
                # Its compute starts the shards, as the server that started it asked (ray_shard_gpus):
                # servers asking for GPU shards share another one.
                gpus = self._compute.shard_gpus
                name = f"{SHARED_NAME}-gpu{gpus:g}" if gpus else SHARED_NAME
                self._shared = self._compute.shared_worker(SharedIndexes, name, (self._compute,),
                                                           threads=SHARED_THREADS)
            return self._shared

    def _shared_state(self, pool_id: str, dim: int, source: "ParquetEmbeddings | RowRange",
                      progress: ProgressFn) -> ShardsState:
        """The pool's shared shards, made to hold ``source``'s rows. A SharedIndexes that is gone
        (lost with its node, or stopped by hand) is started anew, once."""
        progress(0.0, f"asking the pool's index shards on {self._compute.name} for {len(source)} rows")
        key = shared_key(pool_id, self._shards, source)
        for attempt in range(2):
            shared = self._shared_indexes()
            try:
                state = self._compute.call_all([shared], "ensure", key, dim, self._shards, source,
                                               self._shard_memory_bytes)[0]
            except WorkerLost:
                with self._guard:
                    if self._shared is shared:
                        self._shared = None
                if attempt:
                    raise
                continue
            said = {"built": "built", "extended": "extended with the rows they lacked",
                    "kept": "already held the rows"}[state.action]
            progress(1.0, f"{len(state.workers)} index shards {said} ({sum(state.sizes)} rows)")
            self._shards_evicted(state)
            return state
        raise AssertionError("unreachable")

    def _shards_evicted(self, state: ShardsState) -> None:
        """Let go of this server's handles on the shards the cluster stopped to stay under
        shard_memory_mb (another server's handles find them gone at their next ask, which builds them
        again), and report them."""
        for key in state.evicted:
            pool_id = key.split(":", 1)[0]
            with self._guard:
                index = self._loaded.get(pool_id)
                if isinstance(index, ShardedPoolIndex) and index.shared:
                    del self._loaded[pool_id]
            log.info("pool %s: its index shards were stopped to keep the cluster's shards under %d MiB "
                     "(shard_memory_mb); they are built again from the row files when next needed",
                     pool_id, self._shard_memory_bytes // (1 << 20))
        if self._on_shards is not None:
            self._on_shards(len(state.evicted), state.held_bytes)

    def _drop_shared(self, pool_id: str) -> None:
        """Stop the pool's shared shards, wherever they run, whichever server started them (other
        servers' handles then find them gone: a deleted pool, or shards started anew)."""
        try:
            self._compute.call_all([self._shared_indexes()], "stop", f"{pool_id}:")
        except WorkerLost:          # gone with its shards
            with self._guard:
                self._shared = None

    def _row_source(self, pool_id: str, n: int) -> "ParquetEmbeddings | RowRange":
        """The pool's first ``n`` rows as a row source over its row files (what a shard is sent)."""
        files, rows = [], 0
        for f in self._store.row_files("pool", pool_id):
            if rows >= n:
                break           # batches committed after the caller counted
            files.append(f)
            rows += f.rows
        what = f"pool {pool_id!r}"
        source = ParquetEmbeddings(files, what=what)
        if len(source) < n:
            raise DataLoss(f"{what}: stored data is damaged (its row files hold {len(source)} rows, the catalog "
                           f"counts {n}); nothing was served from it")
        return source if len(source) == n else RowRange(source, 0, n)

    def _release(self, pool_id: str) -> None:
        """Let go of the pool's index; a sharded one's shards are stopped, the shared ones too."""
        with self._guard:
            index = self._loaded.pop(pool_id, None)
        if isinstance(index, ShardedPoolIndex):
            index.close()
        if self._shards > 1:
            self._drop_shared(pool_id)

    def drop_shards(self, pool_id: str) -> None:
        """Let go of the pool's sharded index, the shared shards included (some of them are gone:
        the next call builds them anew). Not for one-process indexes, which cannot be lost so."""
        if self._shards > 1:
            self._release(pool_id)

    def forget(self, pool_id: str) -> None:
        """Drop a deleted pool's index from memory; a sharded one's shards are stopped, the shared
        ones too (the server that deleted the pool stops them, and so does each other server that
        held its index when it learns of the deletion). Its lock goes first, so that a build still
        running cannot keep its index afterwards (``_keep``)."""
        with self._guard:
            self._locks.pop(pool_id, None)
            self._refused.pop(pool_id, None)
        self._release(pool_id)

    def forget_deleted(self) -> list[str]:
        """Drop the indexes of pools the store no longer holds (another replica deleted them);
        return their ids."""
        gone = []
        for pool_id in list(self.loaded()):
            if not self._store.exists("pool", pool_id):
                self.forget(pool_id)
                gone.append(pool_id)
        return gone

    def loaded_index(self, pool_id: str) -> "Optional[PoolIndex | ShardedPoolIndex]":
        """The pool's index if this server holds it (None: not built or loaded yet)."""
        with self._guard:
            return self._loaded.get(pool_id)

    def loaded(self) -> dict[str, int]:
        """Rows per loaded index (for metrics)."""
        with self._guard:
            return {k: v.ntotal for k, v in self._loaded.items()}
