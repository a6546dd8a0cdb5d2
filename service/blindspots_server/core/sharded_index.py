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

import threading
from dataclasses import dataclass, replace
from typing import Any, Optional, Protocol

import faiss
import numpy as np

from .parallel import IN_PROCESS, row_chunks
from .pool_index import BUILD_CHUNK, GpuUnavailable, PoolIndex, normalise
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
    chunk at a time (and again for :meth:`exact_search`). ``use_gpu``: as
    :class:`PoolIndex`'s (the compute's ``shard_use_gpu``); ``threads``: faiss's threads in the
    worker's process (the compute's ``shard_threads``; 0 leaves them as they are).
    """

    def __init__(self, dim: int, kind: str, rows: "np.ndarray | RowSource", offset: int,
                 use_gpu: "bool | str" = "auto", threads: int = 0):
        if threads > 0:                 # a worker process of its own (a Ray actor): faiss's threads there
            faiss.omp_set_num_threads(int(threads))
        self.offset = int(offset)
        self.dim = int(dim)
        self.source = None if isinstance(rows, np.ndarray) else rows
        # A build that fails (a source that fails to read: the store's DataLoss; use_gpu=True without
        # a GPU faiss) fails the first call, describe(), instead of the constructor: a Ray actor's
        # constructor error reaches the caller as text only (ActorDiedError), a method's as the
        # exception itself.
        self.failure: Optional[Exception] = None
        try:
            index = PoolIndex(dim, kind=kind, use_gpu=use_gpu)
            self.index = (index.build(rows) if self.source is None
                          else index.build_from(self.source.read, len(self.source)))
        except GpuUnavailable as exc:
            self.failure = GpuUnavailable(f"an index shard that must be on a GPU (its compute's shard_use_gpu; a "
                                          f"server's ray_shard_gpus) cannot be: {exc}. Install faiss-gpu where the "
                                          "shards run, or set ray_shard_gpus to 0")
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

    def extend_to(self, rows: RowSource) -> int:
        """Grow to ``rows`` (this shard's rows from its offset, a longer range of the same source):
        the shard reads the rows it lacks itself, a chunk at a time. Asked again for rows it holds
        already, it adds nothing, so two callers that counted the same new rows add them once."""
        for start in range(self.index.ntotal, len(rows), BUILD_CHUNK):
            self.index.add(rows.read(start, min(len(rows), start + BUILD_CHUNK)))
        if self.source is not None and self.index.ntotal == len(rows):
            self.source = rows
        return self.index.ntotal

    def describe(self) -> tuple[int, str, str]:
        if self.failure is not None:
            raise self.failure
        return self.index.ntotal, self.index.kind_, self.index.description

    def device(self) -> str:
        """Where the shard's index is: "gpu" or "cpu"."""
        return "gpu" if self.index.on_gpu_ else "cpu"

    def threads(self) -> int:
        """faiss's threads in the process holding the shard."""
        return faiss.omp_get_max_threads()

    def nbytes(self) -> int:
        """The shard's index memory, estimated from its structure (:attr:`PoolIndex.nbytes`)."""
        return self.index.nbytes

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
        # A handle on shards a SharedShards keeps (``attach``): closing it leaves them running, and
        # it may answer for fewer rows than they hold (``_visible``: rows another caller added).
        self.shared = False
        self._visible: Optional[int] = None
        self.builds = 0         # of a shared handle: how often its SharedShards built the shards

    def __repr__(self) -> str:
        return (f"ShardedPoolIndex({getattr(self, 'description', '') or self.kind}, ntotal={sum(self._sizes)}, "
                f"shards={len(self._workers)}, on {self.compute.name})")

    def _shard_options(self, shards: int) -> tuple:
        """The compute's ``use_gpu`` and faiss threads for each of ``shards`` shards."""
        return self.compute.shard_use_gpu, self.compute.shard_threads(shards)

    @classmethod
    def attach(cls, dim: int, state: "ShardsState", rows: int, compute: Optional[Any] = None
               ) -> "ShardedPoolIndex":
        """A handle on the shards of ``state`` (kept by a :class:`SharedShards`) that answers for
        their first ``rows`` rows: a caller that counted ``rows`` never sees a row id past them,
        though another caller's rows were added since."""
        total = int(sum(state.sizes))
        if not 0 <= rows <= total:
            raise ValueError(f"the shards hold {total} rows; {rows} asked")
        index = cls(dim, len(state.workers), compute=compute)
        index._workers, index._sizes = list(state.workers), list(state.sizes)
        index.kind_, index.description = state.kind, state.description
        index.shared, index._visible = True, (rows if rows < total else None)
        index.builds = state.builds
        return index

    def build(self, embeddings: np.ndarray, progress: Optional[ProgressFn] = None) -> "ShardedPoolIndex":
        progress = progress or no_progress
        x = np.asarray(embeddings, dtype=np.float32)
        ranges = row_chunks(len(x), self.shards)
        progress(0.0, f"building {len(ranges)} index shards on {self.compute.name}")
        self.close()
        options = self._shard_options(len(ranges))
        self._workers = self.compute.start_workers(
            PoolIndexShard, [(self.dim, self.kind, x[a:b], a, *options) for a, b in ranges])
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
        options = self._shard_options(len(ranges))
        self._workers = self.compute.start_workers(
            PoolIndexShard, [(self.dim, self.kind, RowRange(source, a, b), a, *options) for a, b in ranges])
        self._sizes = [b - a for a, b in ranges]
        described = self.compute.call_all(self._workers, "describe")
        self.kind_, self.description = described[0][1], f"{len(ranges)} shards of {described[0][2]}"
        progress(1.0, "index shards built")
        return self

    def exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over every shard's rows (re-read from their sources), merged: the exact answer."""
        if self._visible is not None:
            raise ValueError("exact_search needs a handle that answers for every row its shards hold")
        q = np.asarray(queries, dtype=np.float32)
        answers = self.compute.call_all(self._workers, "exact_search", q, int(k))
        return merge_top_k([a[0] for a in answers], [a[1] for a in answers], int(k))

    def add(self, embeddings: np.ndarray) -> None:
        """New rows go to the last shard (row ids stay contiguous)."""
        if self.shared:
            raise ValueError("shared shards grow through their SharedShards (ensure), not through a handle")
        x = np.asarray(embeddings, dtype=np.float32)
        if len(x):
            self._sizes[-1] = self.compute.call_all(self._workers[-1:], "add", x)[0]

    def extend_from(self, source: RowSource) -> None:
        """Grow to ``source``'s rows (the rows held, then new ones): the last shard reads the rows
        it lacks from ``source`` itself (:meth:`PoolIndexShard.extend_to`), none pass through here."""
        start = self.ntotal - self._sizes[-1]
        self._sizes[-1] = self.compute.call_all(self._workers[-1:], "extend_to",
                                                RowRange(source, start, len(source)))[0]

    @property
    def ntotal(self) -> int:
        return int(sum(self._sizes)) if self._visible is None else self._visible

    @property
    def sizes(self) -> list[int]:
        """The rows each shard holds."""
        return list(self._sizes)

    @property
    def workers(self) -> tuple:
        """The shards' workers (objects here, actor handles on Ray: equal for the same actor)."""
        return tuple(self._workers)

    def devices(self) -> list[str]:
        """Where each shard's index is: "gpu" or "cpu"."""
        return self.compute.call_all(self._workers, "device") if self._workers else []

    def threads(self) -> list[int]:
        """faiss's threads in each shard's process."""
        return self.compute.call_all(self._workers, "threads") if self._workers else []

    def nbytes(self) -> int:
        """The shards' index memory, in all (each estimated from its structure)."""
        return int(sum(self.compute.call_all(self._workers, "nbytes"))) if self._workers else 0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = np.asarray(queries, dtype=np.float32)
        # Rows past those this handle answers for can take at most ``hidden`` places of a top-k.
        hidden = int(sum(self._sizes)) - self.ntotal
        answers = self.compute.call_all(self._workers, "search", q, int(k) + hidden)
        dist, ids = merge_top_k([a[0] for a in answers], [a[1] for a in answers], int(k) + hidden)
        if hidden:
            past = ids >= self.ntotal
            dist, ids = merge_top_k([np.where(past, np.inf, dist)], [np.where(past, -1, ids)], int(k))
        return dist, ids

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
        """Stop the shards (a shared handle only lets go of them: their SharedShards stops them)."""
        if self._workers and not self.shared:
            self.compute.stop_workers(self._workers)
        self._workers, self._sizes, self._visible = [], [], None


@dataclass(frozen=True)
class ShardsState:
    """What :meth:`SharedShards.ensure` answers: the shards (workers), the rows each holds, their
    index type, and what the call did: "kept", "extended" or "built"."""
    workers: list
    sizes: list[int]
    kind: str
    description: str
    action: str
    builds: int
    # What the holder did to stay under its memory cap (SharedIndexes.ensure's memory_bytes): the keys
    # whose shards it stopped, and the estimated memory of the shards it holds afterwards, in all.
    evicted: tuple = ()
    held_bytes: int = 0


def row_locations(source: RowSource) -> Optional[list[str]]:
    """The files a row source reads, in order (None for a source that is not files)."""
    while isinstance(source, RowRange):
        source = source.source
    paths = getattr(source, "paths", None)
    return None if paths is None else [str(p) for p in paths]


class SharedShards:
    """One pool's index shards, kept for every caller that asks for them, not for one (held by
    :class:`SharedIndexes`). ``ensure(source)`` keeps the shards when they hold the source's rows
    (or more: what another caller counted since), lets the last shard read the rows it lacks from
    the files when they follow the ones it holds, and builds the shards anew when the row files are
    not those it was built from (a repaired store). Not thread-safe: its holder calls it under the
    pool's lock.
    """

    def __init__(self, dim: int, shards: int, kind: str = "auto", compute: Optional[Any] = None):
        self.index = ShardedPoolIndex(dim, shards, kind, compute=compute)
        self.locations: Optional[list[str]] = None
        self.builds = 0
        self.nbytes = 0         # the shards' index memory, estimated when they were built or grown

    def ensure(self, source: RowSource) -> ShardsState:
        index, rows, locations = self.index, len(source), row_locations(source)
        try:
            if not index.workers or not _same_files(self.locations, locations):
                index.build_from(source)
                self.locations, action = locations, "built"
                self.builds += 1
            elif index.ntotal < rows:
                index.extend_from(source)
                self.locations, action = locations, "extended"
            else:
                action = "kept"
            if action != "kept":
                self.nbytes = index.nbytes()
        except Exception:
            self.close()          # a half-built or half-grown set of shards is never kept
            raise
        return ShardsState(list(index.workers), index.sizes, index.kind_, index.description, action, self.builds)

    def describe(self) -> tuple[list[int], int]:
        """The rows each shard holds, and how often the shards were built."""
        return self.index.sizes, self.builds

    def close(self) -> None:
        self.index.close()
        self.locations, self.nbytes = None, 0


def _same_files(held: Optional[list[str]], asked: Optional[list[str]]) -> bool:
    """Whether shards built from the files ``held`` can answer for ``asked``: one list starts the
    other (rows were added since, by this caller or another), or neither is files."""
    if held is None or asked is None:
        return held is None and asked is None
    shorter = min(len(held), len(asked))
    return held[:shorter] == asked[:shorter]


class SharedIndexes:
    """Every pool's :class:`SharedShards`, by key, for every server that asks.

    On a Ray cluster it is one named, detached actor (``compute.shared_worker``) that every server
    finds and that outlives the server that started it; the shards are its own actors. Its calls
    for one key run one at a time (servers that need a pool's shards at once build them once),
    calls for different keys side by side (it is started with several threads).

    A caller may cap the shards' memory (``ensure``'s ``memory_bytes``): past it, the shards asked
    for least recently are stopped, and built again from the row files when next asked for.
    """

    def __init__(self, compute: Optional[Any] = None):
        self.compute = compute or IN_PROCESS
        self._pools: dict[str, SharedShards] = {}       # least recently asked for first
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def ensure(self, key: str, dim: int, shards: int, source: RowSource, memory_bytes: int = 0) -> ShardsState:
        """The shards under ``key`` (started for ``dim`` and ``shards`` when there are none), made
        to hold ``source``'s rows (:meth:`SharedShards.ensure`). ``memory_bytes`` > 0: then the
        least recently asked-for shards of other keys are stopped until those held fit it (the
        estimated index memory of every key's shards); never ``key``'s, nor shards that another
        call is building or growing. The answer names the keys stopped."""
        with self._lock(key):
            with self._guard:
                held = self._pools.pop(key, None)
                if held is None:
                    held = SharedShards(dim, shards, compute=self.compute)
                self._pools[key] = held             # now the most recently asked for
            state = held.ensure(source)
        evicted = self._evict(memory_bytes, keep=key) if memory_bytes > 0 else ()
        return replace(state, evicted=evicted, held_bytes=self.held_bytes())

    def _evict(self, memory_bytes: int, keep: str) -> tuple:
        """Stop the least recently asked-for shards but ``keep``'s until those held fit ``memory_bytes``;
        shards whose lock another call holds (a build, a growth, a stop) are busy and passed over."""
        with self._guard:
            order = list(self._pools.items())
        total, evicted = sum(held.nbytes for _, held in order), []
        for key, held in order:
            if total <= memory_bytes:
                break
            lock = self._lock(key)
            if key == keep or not lock.acquire(blocking=False):
                continue
            try:
                with self._guard:
                    if self._pools.get(key) is not held:
                        continue                    # stopped or started anew meanwhile
                    del self._pools[key]
                total -= held.nbytes
                held.close()
                evicted.append(key)
            finally:
                lock.release()
        return tuple(evicted)

    def held_bytes(self) -> int:
        """The estimated index memory of every key's shards."""
        with self._guard:
            return int(sum(held.nbytes for held in self._pools.values()))

    def describe(self, key: str) -> Optional[tuple[list[int], int]]:
        """The rows each shard under ``key`` holds and how often they were built; None: no such key."""
        with self._lock(key):
            held = self._pools.get(key)
            return None if held is None else held.describe()

    def keys(self) -> list[str]:
        with self._guard:
            return sorted(self._pools)

    def stop(self, prefix: str) -> list[str]:
        """Stop the shards of every key that starts with ``prefix``; their keys."""
        stopped = []
        for key in [k for k in self.keys() if k.startswith(prefix)]:
            with self._lock(key):
                with self._guard:
                    held = self._pools.pop(key, None)
                if held is not None:
                    held.close()
                    stopped.append(key)
        return stopped
