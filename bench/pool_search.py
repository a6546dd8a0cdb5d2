"""Pool search benchmark: our PoolIndex vs brute-force faiss IndexFlat.

Synthetic clustered pool (gaussian mixture, 128-d, float32); queries drawn
from the same mixture; recall@k of our index against exact search on the same
queries. Sizes 100k and 1M (``--quick``: 100k only).

    .venv/bin/python bench/pool_search.py --quick
    .venv/bin/python bench/pool_search.py

Writes bench/results/pool_search.md (a markdown fragment) and prints it.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass

import faiss
import numpy as np

from measure import ROOT, write_fragment

sys.path.insert(0, str(ROOT / "service"))

import pandas as pd  # noqa: E402

from blindspots_server.core.pool_index import PoolIndex  # noqa: E402
from blindspots_server.core.suggest import PoolData, TargetRegion, suggest_candidates  # noqa: E402

DIM = 128
LATENT = 32
CENTERS = 2000


@dataclass
class Timing:
    rows: int
    queries: int
    k: int
    description: str
    build_s: float
    query_s: float
    flat_build_s: float
    flat_query_s: float
    recall: float
    targeted_s: float        # suggest_candidates("targeted", budget) over the whole pool
    budget: int


def mixture(n: int, seed: int | list[int], chunk: int = 200_000, components=None) -> np.ndarray:
    """Embedding-like rows: a gaussian mixture in a LATENT-d space mapped to DIM-d, plus noise.

    Like the listings scenario (and real backbones), the data has a low intrinsic
    dimension; isotropic 128-d blobs would be a worst case no embedding resembles.
    Generated in chunks: a 1M x 128 pool is 512 MB, so no float64 temporaries.
    ``components``: draw from these mixture components only (e.g. a failure region's rows).
    """
    world = np.random.default_rng(12345)
    means = world.normal(0, 1, (CENTERS, LATENT)).astype(np.float32) * 2.0
    backbone = (world.normal(0, 1, (LATENT, DIM)) / np.sqrt(LATENT)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        which = (rng.integers(0, CENTERS, m) if components is None
                 else np.asarray(components)[rng.integers(0, len(components), m)])
        latent = means[which] + rng.standard_normal((m, LATENT), dtype=np.float32)
        out[start:start + m] = latent @ backbone
        out[start:start + m] += rng.standard_normal((m, DIM), dtype=np.float32) * 0.05
    return out


class MixtureRows:
    """The mixture as a row source any process can read a range of: block ``b`` of ``BLOCK`` rows is
    ``mixture(BLOCK, seed=(seed, b))``, so rows a..b come out the same wherever they are generated,
    and nobody has to hold (or ship) the whole pool. Not the same rows as ``mixture(n, seed)``."""

    BLOCK = 100_000

    def __init__(self, rows: int, seed: int):
        self.rows, self.seed = int(rows), int(seed)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.rows

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cached": None}

    def _block(self, b: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != b:
            n = min(self.BLOCK, self.rows - b * self.BLOCK)
            self._cached = (b, mixture(n, seed=[self.seed, b]))
        return self._cached[1]

    def read(self, start: int, stop: int) -> np.ndarray:
        parts = [self._block(b)[max(start, b * self.BLOCK) - b * self.BLOCK:min(stop, (b + 1) * self.BLOCK)
                                - b * self.BLOCK]
                 for b in range(start // self.BLOCK, (stop - 1) // self.BLOCK + 1)] if stop > start else []
        return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros((0, DIM), np.float32)


def targeted_seconds(pool: np.ndarray, index: PoolIndex, budget: int, regions: int = 3,
                     failures_per_region: int = 1000) -> float:
    """Wall time of a whole targeted suggestion of ``budget`` rows (kNN, scoring, diversity)."""
    failures = mixture(regions * failures_per_region, seed=3)
    targets = [TargetRegion(region_id=r, excess_errors=float(100 * (regions - r)),
                            failure_embeddings=failures[r::regions],
                            failure_indices=np.arange(r, len(failures), regions))
               for r in range(regions)]
    data = PoolData(embeddings=pool, probabilities=None, metadata=pd.DataFrame(index=pd.RangeIndex(len(pool))))
    t0 = time.perf_counter()
    picks = suggest_candidates("targeted", budget, data, targets, index=index)
    elapsed = time.perf_counter() - t0
    assert len(picks) == budget, len(picks)
    return elapsed


def measure(rows: int, queries: int, k: int) -> Timing:
    pool = mixture(rows, seed=1)
    q = mixture(queries, seed=2)
    t0 = time.perf_counter()
    index = PoolIndex(DIM).build(pool)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, found = index.search(q, k)
    query_s = time.perf_counter() - t0
    targeted_s = targeted_seconds(pool, index, budget=queries)
    # Brute force on the same normalised vectors: the exact answer and the baseline time.
    t0 = time.perf_counter()
    faiss.normalize_L2(pool)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(pool)
    flat_build_s = time.perf_counter() - t0
    qn = q.copy()
    faiss.normalize_L2(qn)
    t0 = time.perf_counter()
    _, exact = flat.search(qn, k)
    flat_query_s = time.perf_counter() - t0
    hits = sum(len(np.intersect1d(f, e)) for f, e in zip(found, exact))
    result = Timing(rows, queries, k, index.description, build_s, query_s,
                    flat_build_s, flat_query_s, hits / exact.size, targeted_s, queries)
    del pool, flat, index
    gc.collect()
    return result


def table(results: list[Timing]) -> str:
    lines = [f"Pool search, {DIM}-d gaussian mixture ({CENTERS} clusters in a {LATENT}-d latent space), cosine, "
             f"{faiss.omp_get_max_threads()} threads, faiss {faiss.__version__}.", "",
             "| pool rows | queries x k | our index | build s | query s | IndexFlat build s "
             "| IndexFlat query s | query speed-up | recall@k | targeted suggest (budget) s |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.rows:,} | {r.queries:,} x {r.k} | {r.description} | {r.build_s:.2f} | "
                     f"{r.query_s:.2f} | {r.flat_build_s:.2f} | {r.flat_query_s:.2f} | "
                     f"{r.flat_query_s / r.query_s:.1f}x | {r.recall:.3f} | "
                     f"{r.targeted_s:.2f} ({r.budget:,}) |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    results = []
    for rows in sizes:
        results.append(measure(rows, args.queries, args.k))
        print(f"{rows} rows done", file=sys.stderr)
    text = table(results)
    write_fragment("pool_search", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
