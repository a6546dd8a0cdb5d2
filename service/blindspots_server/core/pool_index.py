"""A faiss nearest-neighbour index over an unlabeled pool's embeddings.

Metric: cosine. Rows are L2-normalised on the way in (build, add, search) and
searched by inner product, the same normalisation the diagnosis applies before
comparing embeddings. ``search`` returns cosine *distances* (1 - cosine
similarity, in [0, 2], smaller is closer) so callers can treat them like any
distance; padding rows have index -1 and distance +inf.

Index type by size (``kind="auto"``):

- fewer than ``FLAT_MAX_ROWS`` rows: exact ``Flat`` (brute force is fast enough
  and never misses a neighbour);
- otherwise ``IVF{nlist},Flat`` with nlist ~ 2 sqrt(rows) rounded to a power
  of two (at most 1024) and ``nprobe`` chosen for recall >= 0.95 on clustered
  embeddings (see bench/pool_search.py);
- once the float32 vectors themselves would pass ``CODES_MAX_BYTES`` (2 GiB:
  about 4.2M rows at 128-d), ``IVF{nlist},SQ8``: the same inverted lists with
  each dimension stored as one byte (4x fewer bytes);
- once even those one-byte codes would pass ``CODES_MAX_BYTES`` (about 16.8M
  rows at 128-d), ``IVF{nlist},PQ{m}x8``: each row stored as ``m`` one-byte
  product-quantizer codes (m = dim / 2 by default: 64 bytes for a 128-d row
  instead of 512).

Neither compressed kind re-ranks its candidates with the exact vectors (the
index does not hold them; that is the point), so their recall is lower than
IVF-Flat's and is measured, not assumed: bench/sharded_search.py reports
recall@10 against exact search, and at 10M rows of its 128-d mixture
(bench/results/sharded_search.md) IVF-SQ8 shards found 0.96 of the true top-10
and IVF-PQ shards 0.74 (one-process IVF-Flat: 0.999), with SQ8 also building and querying
faster; PQ's only gain is memory (953 against 1,432 MiB per 5M-row shard), hence
the order above. tests/core/test_pool_index.py bounds both on a small set.
Fewer PQ codes (dim / 4) halve the memory again but lost a quarter of the
recall on the 128-d mixture in a one-off trial (recall@10 0.65 against 0.87
at 300k rows), so they are only on request (``pq_m``).

``kind="hnsw"`` is available on request: better recall/latency trade-off, but
slow to build on few cores and no GPU version. ``kind="ivfsq8"`` and
``kind="ivfpq"`` can be asked for at any size.

Memory while building: rows are read, normalised and added in chunks
(``build_from`` takes a reader of row ranges), so a build needs the index plus
one chunk and the training sample, never a second copy of the whole pool.

Growing pools: ``add`` appends rows (their ids continue the row order). An IVF
quantizer trained on an early, small pool stops describing the data once the
pool has grown a lot, so ``add`` rebuilds (re-chooses the kind, retrains) when
the pool has grown to ``REBUILD_GROWTH`` x the rows it was last built on; an
auto Flat index past ``FLAT_MAX_ROWS`` is rebuilt as IVF by the same rule. An
index of a compressed kind (SQ8, PQ) rebuilt this way is retrained on its
reconstructed (quantised) rows, since it holds no others, and a rebuild
reconstructs every row as float32 at once: the growth path, unlike
``build_from``, holds the whole pool.

GPU: with ``use_gpu="auto"`` the index is cloned to the GPU when faiss was
built with GPU support and ``faiss.get_num_gpus() > 0`` (HNSW stays on the CPU:
faiss has no GPU HNSW). IVF-PQ goes to the GPU with float16 lookup tables (in
float32, 64 sub-quantizers of 256 codes need 64 KiB of a block's shared memory,
past the 48 KiB faiss-gpu may use); an index faiss-gpu still refuses (e.g. more
sub-quantizers than it supports) stays on the CPU under "auto", saying why in
``gpu_refused_``, and is an error under ``use_gpu=True``. ``to_bytes`` always
serialises a CPU copy. Every GPU
index shares one ``StandardGpuResources``, whose scratch memory is a stack that
two threads using it at once corrupt (faiss aborts the process: "p + size ==
head_"), so each call into a GPU index holds one lock (``_gpu_lock``): a server's
RPC threads then take the GPU in turn. CPU indexes take no lock. A GPU index keeps
its CPU copy (for ``vectors``, ``to_bytes`` and k past 2048) until it changes.
"""
from __future__ import annotations

import contextlib
import json
import math
import struct
import threading
from typing import Callable

import faiss
import numpy as np

from .results import ProgressFn, no_progress

FLAT_MAX_ROWS = 50_000
REBUILD_GROWTH = 4.0
# k-means on at most this many points per centroid: more barely improves the
# quantizer and training time grows linearly.
TRAIN_POINTS_PER_LIST = 64
MAX_NLIST = 1024
# The most bytes of row codes an auto index holds: past it, auto compresses the rows
# (float32 -> SQ8 one byte a dimension -> PQ dim/2 bytes a row).
CODES_MAX_BYTES = 2 << 30
# Rows read, normalised and added per step while building.
BUILD_CHUNK = 65_536
KINDS = ("auto", "flat", "ivf", "ivfpq", "ivfsq8", "hnsw")
IVF_KINDS = ("ivf", "ivfpq", "ivfsq8")
_MAGIC = b"BSPIDX1\n"


def _normalised(x: np.ndarray, name: str, dim: int, copy: bool = True) -> np.ndarray:
    """Rows scaled to unit L2 norm; ``copy=False`` scales a float32 C-ordered writable ``x`` in place."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {x.shape}")
    in_place = (not copy and x.dtype == np.float32 and x.flags.c_contiguous and x.flags.writeable)
    if not in_place:
        x = np.array(x, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    faiss.normalize_L2(x)
    return x


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32 copy; zero rows stay zero)."""
    return normalise_in_place(np.array(x, dtype=np.float32, order="C", copy=True))


def normalise_in_place(x: np.ndarray) -> np.ndarray:
    """:func:`normalise` without the copy, for a float32 array the caller owns; returns ``x``."""
    if x.dtype != np.float32:
        raise ValueError(f"normalise_in_place needs float32 rows, got {x.dtype}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, np.where(norms > 0, norms, 1.0), out=x)
    return x


def default_nlist(rows: int) -> int:
    """Inverted lists for an IVF over ``rows`` rows: 2 sqrt(rows) as a power of two, at most 1024.

    The cap bounds k-means training (cost ~ nlist^2 with a fixed sample per list)
    to seconds on a few CPU cores for a 1M-row pool.
    """
    target = 2.0 * math.sqrt(max(rows, 1))
    return int(min(MAX_NLIST, 2 ** round(math.log2(max(4.0, target)))))


def default_nprobe(nlist: int) -> int:
    """Lists probed per query: nlist / 64, at least 16 (recall >= 0.95 in bench/pool_search.py)."""
    return int(min(nlist, max(16, nlist // 64)))


def default_pq_m(dim: int) -> int:
    """Product-quantizer sub-vectors for ``dim``: dim / 2 (a divisor of dim, at least 1).

    One byte per 2 dimensions (PQ64x8 at 128-d, 8x fewer bytes than float32).
    """
    return max(m for m in range(1, max(1, dim // 2) + 1) if dim % m == 0)


def gpu_available() -> bool:
    """True when this faiss build has GPU support and a GPU is visible."""
    return index_device()[0] == "gpu"


def index_device() -> tuple[str, str]:
    """Where a ``use_gpu="auto"`` index goes: ("gpu", ...) or ("cpu", ...), with why in words."""
    if not hasattr(faiss, "StandardGpuResources"):
        return "cpu", f"faiss {faiss.__version__} without GPU support"
    gpus = faiss.get_num_gpus()
    if gpus == 0:
        return "cpu", f"faiss {faiss.__version__} with GPU support, but no GPU is visible"
    return "gpu", f"faiss {faiss.__version__}, {gpus} GPU{'s' if gpus != 1 else ''} visible (indexes use the first)"


class GpuUnavailable(RuntimeError):
    """An index that must be on the GPU (``use_gpu=True``) cannot be: faiss has no GPU support,
    none is visible, or faiss-gpu refuses the index."""


class PoolIndex:
    """Cosine nearest-neighbour search over pool rows; ids are row positions."""

    _gpu_lock = threading.RLock()       # every GPU index's calls, one at a time (module doc)

    def __init__(self, dim: int, kind: str = "auto", nlist: int | None = None,
                 nprobe: int | None = None, hnsw_m: int = 32, ef_search: int | None = None,
                 use_gpu: str | bool = "auto", pq_m: int | None = None):
        if int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if nlist is not None and nlist < 1:
            raise ValueError(f"nlist must be >= 1, got {nlist}")
        if nprobe is not None and nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {nprobe}")
        if hnsw_m < 2:
            raise ValueError(f"hnsw_m must be >= 2, got {hnsw_m}")
        if ef_search is not None and ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        if pq_m is not None and (pq_m < 1 or int(dim) % pq_m):
            raise ValueError(f"pq_m must divide dim={dim}, got {pq_m}")
        if use_gpu not in ("auto", True, False):
            raise ValueError(f"use_gpu must be 'auto', True or False, got {use_gpu!r}")
        self.dim = int(dim)
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.use_gpu = use_gpu
        self.pq_m = pq_m
        self.kind_ = "flat"
        self.description = "Flat"
        self.built_rows_ = 0          # rows the current structure was chosen/trained for
        self.on_gpu_ = False
        self.gpu_refused_ = ""        # why faiss-gpu would not take this index (it stays on the CPU)
        self._cpu = faiss.IndexFlatIP(self.dim)
        self._cpu_stale = False       # a GPU index changed since ``_cpu`` was copied from it
        self._index = self._cpu

    # -- structure ---------------------------------------------------------
    def _choose(self, rows: int) -> tuple[str, str]:
        kind = self.kind
        if kind == "auto":
            kind = ("flat" if rows < FLAT_MAX_ROWS
                    else "ivf" if rows * self.dim * 4 <= CODES_MAX_BYTES
                    else "ivfsq8" if rows * self.dim <= CODES_MAX_BYTES else "ivfpq")
        if kind == "flat":
            return "flat", "Flat"
        if kind == "hnsw":
            return "hnsw", f"HNSW{self.hnsw_m},Flat"
        nlist = self.nlist or default_nlist(rows)
        # k-means needs more points than centroids; tiny pools get fewer lists.
        nlist = max(1, min(nlist, rows // 4 if rows >= 4 else 1))
        if kind == "ivfpq":
            # "np": no polysemous training (a code reordering for Hamming pre-filtering that we do
            # not use, and that takes most of the training time).
            return "ivfpq", f"IVF{nlist},PQ{self.pq_m or default_pq_m(self.dim)}x8np"
        if kind == "ivfsq8":
            return "ivfsq8", f"IVF{nlist},SQ8"
        return "ivf", f"IVF{nlist},Flat"

    def _gpu(self):
        """The GPU lock while this index is on the GPU (the module doc says why); else nothing."""
        return PoolIndex._gpu_lock if self.on_gpu_ else contextlib.nullcontext()

    def _configure(self) -> None:
        """Apply search-time parameters (nprobe / efSearch) to the live index."""
        if self.kind_ in IVF_KINDS:
            nlist = faiss.extract_index_ivf(self._cpu).nlist
            nprobe = min(self.nprobe or default_nprobe(nlist), nlist)
            faiss.extract_index_ivf(self._cpu).nprobe = nprobe
            if self.on_gpu_:
                with self._gpu():
                    faiss.GpuParameterSpace().set_index_parameter(self._index, "nprobe", nprobe)
        elif self.kind_ == "hnsw":
            faiss.downcast_index(self._cpu).hnsw.efSearch = self.ef_search or 64

    def _to_device(self) -> None:
        want = gpu_available() if self.use_gpu == "auto" else bool(self.use_gpu)
        if want and not gpu_available():
            raise GpuUnavailable("use_gpu=True but faiss has no GPU support or no GPU is visible")
        self.on_gpu_ = bool(want and self.kind_ != "hnsw")
        self.gpu_refused_ = ""
        self._index = self._cpu
        self._cpu_stale = False         # the GPU copy is made from _cpu as it is
        if self.on_gpu_:
            options = faiss.GpuClonerOptions()
            options.useFloat16 = self.kind_ == "ivfpq"      # IVF-PQ: float16 lookup tables (module doc)
            with self._gpu():
                if not hasattr(PoolIndex, "_gpu_resources"):
                    PoolIndex._gpu_resources = faiss.StandardGpuResources()
                try:
                    self._index = faiss.index_cpu_to_gpu(PoolIndex._gpu_resources, 0, self._cpu, options)
                except RuntimeError as exc:     # faiss-gpu's own checks (GpuIndexIVFPQ's settings)
                    if self.use_gpu is True:
                        raise GpuUnavailable(f"use_gpu=True but faiss-gpu refuses {self.description}: {exc}") from None
                    self.on_gpu_ = False
                    self.gpu_refused_ = f"faiss-gpu refuses {self.description}: {str(exc).splitlines()[-1][:300]}"
        self._configure()

    def _sync_cpu(self) -> None:
        """Make ``_cpu`` hold what the GPU index holds: a copy when it changed since the last one
        (vectors, to_bytes and searches past k=2048 then reuse it, not a copy of the pool each)."""
        if self.on_gpu_:
            with self._gpu():
                if self._cpu_stale:
                    self._cpu = faiss.index_gpu_to_cpu(self._index)
                    self._cpu_stale = False

    def build(self, embeddings: np.ndarray, progress: ProgressFn | None = None, copy: bool = True) -> "PoolIndex":
        """(Re)build the index from all pool rows; returns self.

        ``copy=False`` lets the build normalise ``embeddings`` in place (when they are
        float32, C-ordered and writable), for a caller that no longer needs them;
        either way rows are added a chunk at a time (``build_from``), so the pool is
        never held twice."""
        x = np.asarray(embeddings)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (n, {self.dim}), got {x.shape}")
        if not copy:
            x = _normalised(x, "embeddings", self.dim, copy=False)
            self._build(lambda start, stop: x[start:stop], len(x), progress or no_progress, normalised=True)
            return self
        return self.build_from(lambda start, stop: x[start:stop], len(x), progress)

    def build_from(self, read: Callable[[int, int], np.ndarray], rows: int,
                   progress: ProgressFn | None = None) -> "PoolIndex":
        """(Re)build from ``rows`` rows that ``read(start, stop)`` returns a range at a time; returns self.

        The whole pool is never held at once: the IVF training sample is gathered
        in one pass over the ranges, and rows are added in a second. The same rows
        give the same index as ``build``.
        """
        self._build(read, int(rows), progress or no_progress, normalised=False)
        return self

    def _read(self, read: Callable[[int, int], np.ndarray], start: int, stop: int, normalised: bool) -> np.ndarray:
        x = read(start, stop)
        if len(x) != stop - start:
            raise ValueError(f"rows {start}..{stop} read as {len(x)} rows")
        return np.ascontiguousarray(x, dtype=np.float32) if normalised else _normalised(x, "embeddings", self.dim)

    def _build(self, read: Callable[[int, int], np.ndarray], rows: int, progress: ProgressFn,
               normalised: bool) -> None:
        self.kind_, self.description = self._choose(rows)
        progress(0.0, f"building {self.description} pool index over {rows} rows")
        self._cpu = faiss.index_factory(self.dim, self.description, faiss.METRIC_INNER_PRODUCT)
        if self.kind_ == "hnsw":
            self._cpu.hnsw.efConstruction = max(40, self.hnsw_m * 2)
        self.on_gpu_ = False
        self._index = self._cpu
        if self.kind_ in IVF_KINDS and rows > 0:
            nlist = faiss.extract_index_ivf(self._cpu).nlist
            train_n = min(rows, nlist * TRAIN_POINTS_PER_LIST)
            # A fixed-seed sample: the same pool always gives the same quantizer.
            picks = None if train_n == rows else np.sort(
                np.random.default_rng(0).choice(rows, train_n, replace=False))
            progress(0.02, f"reading a training sample of {train_n} rows")
            sample = self._gather(read, rows, picks, normalised)
            self._to_device()
            progress(0.05, f"training IVF quantizer on {train_n} rows")
            with self._gpu():
                self._index.train(sample)
                self._cpu_stale = self.on_gpu_
            del sample
        else:
            self._to_device()
        self.built_rows_ = rows
        # Add in chunks so a long build reports progress (and can be cancelled).
        for start in range(0, rows, BUILD_CHUNK):
            chunk = self._read(read, start, min(rows, start + BUILD_CHUNK), normalised)
            with self._gpu():
                self._index.add(chunk)
                self._cpu_stale = self.on_gpu_
            progress(0.3 + 0.7 * min(rows, start + BUILD_CHUNK) / rows, "adding rows to the pool index")
        self._configure()
        progress(1.0, "pool index built")

    def _gather(self, read: Callable[[int, int], np.ndarray], rows: int, picks: np.ndarray | None,
                normalised: bool) -> np.ndarray:
        """Rows ``picks`` (sorted; all rows when None), read range by range."""
        out = np.empty((rows if picks is None else len(picks), self.dim), np.float32)
        for start in range(0, rows, BUILD_CHUNK):
            stop = min(rows, start + BUILD_CHUNK)
            if picks is None:
                out[start:stop] = self._read(read, start, stop, normalised)
                continue
            a, b = np.searchsorted(picks, [start, stop])
            if b > a:
                out[a:b] = self._read(read, start, stop, normalised)[picks[a:b] - start]
        return out

    def _all_vectors(self) -> np.ndarray:
        with self._gpu():           # the CPU copy stays this call's until it is read
            self._sync_cpu()
            if self.kind_ in IVF_KINDS:
                faiss.extract_index_ivf(self._cpu).make_direct_map()
            return self._cpu.reconstruct_n(0, self._cpu.ntotal)

    def add(self, embeddings: np.ndarray) -> None:
        """Append pool rows; their ids continue the row order. May rebuild (see module doc)."""
        x = _normalised(embeddings, "embeddings", self.dim)
        if len(x) == 0:
            return
        total = self.ntotal + len(x)
        grown = total >= REBUILD_GROWTH * max(self.built_rows_, 1)
        if self.ntotal == 0 or (grown and self._choose(total) != (self.kind_, self.description)):
            previous = self._all_vectors() if self.ntotal else np.zeros((0, self.dim), np.float32)
            rows = np.concatenate([previous, x])
            self._build(lambda start, stop: rows[start:stop], len(rows), no_progress, normalised=True)
            return
        if grown:
            self.built_rows_ = total   # same structure still right; measure growth from here
        with self._gpu():
            self._index.add(x)
            self._cpu_stale = self.on_gpu_

    # -- queries -------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (cosine distances, row indices), each (n_queries, k); missing hits are -1 / inf."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _normalised(queries, "queries", self.dim)
        k = int(k)
        if self.ntotal == 0 or len(q) == 0:
            return np.full((len(q), k), np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        # GPU flat/IVF search caps k at 2048; larger k is served by the CPU copy.
        if not self.on_gpu_ or k > 2048:
            index = self._index if not self.on_gpu_ else self._cpu_copy()
            sims, ids = index.search(q, min(k, self.ntotal))
        else:
            with self._gpu():
                sims, ids = self._index.search(q, min(k, self.ntotal))
        dist = np.where(ids >= 0, 1.0 - sims, np.inf).astype(np.float32)
        dist = np.maximum(dist, 0.0)  # rounding can make self-distance slightly negative
        if k > ids.shape[1]:
            pad = k - ids.shape[1]
            dist = np.hstack([dist, np.full((len(q), pad), np.inf, np.float32)])
            ids = np.hstack([ids, np.full((len(q), pad), -1, np.int64)])
        return dist, ids.astype(np.int64)

    @property
    def nbytes(self) -> int:
        """The index's memory, estimated from its structure: codes, ids and coarse centroids of an
        IVF index, vectors and links of HNSW, vectors of Flat (what a cache of indexes counts)."""
        n = self.ntotal
        if self.kind_ in IVF_KINDS:
            ivf = faiss.extract_index_ivf(self._cpu)
            return int(n * (ivf.code_size + 8) + ivf.nlist * self.dim * 4)
        if self.kind_ == "hnsw":
            return int(n * (self.dim * 4 + self.hnsw_m * 2 * 4 * 1.1))
        return int(n * self.dim * 4)

    @property
    def holds_rows(self) -> bool:
        """Whether :meth:`vectors` gives the (unit) rows themselves: Flat, IVF-Flat and HNSW hold
        them; IVF-SQ8 and IVF-PQ hold codes, decoded close to them."""
        return self.kind_ in ("flat", "ivf", "hnsw")

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Pool rows ``rows`` as the index holds them, in the given order: unit rows, exact for
        Flat, IVF-Flat and HNSW, decoded from their codes (close, not equal) for IVF-SQ8 and IVF-PQ.
        For a caller that does not hold the pool's rows (targeted suggestion over shards)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.ntotal):
            raise IndexError(f"rows outside 0..{self.ntotal}")
        if len(rows) == 0:
            return np.zeros((0, self.dim), np.float32)
        with self._gpu():           # the CPU copy stays this call's until it is read
            self._sync_cpu()
            if self.kind_ in IVF_KINDS:
                ivf = faiss.extract_index_ivf(self._cpu)
                if ivf.direct_map.no():
                    ivf.make_direct_map()       # 8 bytes a row, kept up to date by later adds
            return self._cpu.reconstruct_batch(rows)

    def _cpu_copy(self):
        """A CPU copy of a GPU index to search (faiss-gpu's k is at most 2048); this call's own."""
        with self._gpu():
            self._sync_cpu()
            self._configure()
            return self._cpu

    # -- persistence ---------------------------------------------------------
    def to_bytes(self) -> bytearray:
        """Serialise (always a CPU copy) with our parameters, for an object store (a
        bytearray: bytes-like, built without an extra copy)."""
        with self._gpu():
            self._sync_cpu()
            cpu = self._cpu             # this call's copy, whatever another call syncs meanwhile
        header = json.dumps({
            "dim": self.dim, "kind": self.kind, "nlist": self.nlist, "nprobe": self.nprobe,
            "hnsw_m": self.hnsw_m, "ef_search": self.ef_search,
            "use_gpu": self.use_gpu, "pq_m": self.pq_m, "kind_": self.kind_, "description": self.description,
            "built_rows_": self.built_rows_}).encode()
        # Written straight into one growing buffer: serialize_index + tobytes + concatenation
        # held three copies of the index at once (1.5 GB for a 1M x 128 IVF-Flat pool).
        out = bytearray(_MAGIC + struct.pack("<Q", len(header)) + header)
        faiss.write_index(cpu, faiss.PyCallbackIOWriter(out.extend))
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> "PoolIndex":
        """Restore an index written by ``to_bytes`` (moved to the GPU if one is usable)."""
        if not data.startswith(_MAGIC):
            raise ValueError("data is not a serialised PoolIndex")
        offset = len(_MAGIC)
        (size,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        meta = json.loads(data[offset:offset + size])
        # An index written on a GPU host must still load on a CPU-only one.
        use_gpu = "auto" if meta["use_gpu"] is True and not gpu_available() else meta["use_gpu"]
        obj = cls(meta["dim"], kind=meta["kind"], nlist=meta["nlist"], nprobe=meta["nprobe"],
                  hnsw_m=meta["hnsw_m"], ef_search=meta["ef_search"], use_gpu=use_gpu,
                  pq_m=meta.get("pq_m"))
        obj.kind_, obj.description = meta["kind_"], meta["description"]
        obj.built_rows_ = meta["built_rows_"]
        obj._cpu = faiss.deserialize_index(np.frombuffer(data, np.uint8, offset=offset + size).copy())
        obj._to_device()
        return obj

    def __repr__(self) -> str:
        refused = f", gpu refused: {self.gpu_refused_}" if self.gpu_refused_ else ""
        return f"PoolIndex({self.description}, ntotal={self.ntotal}, gpu={self.on_gpu_}{refused})"
