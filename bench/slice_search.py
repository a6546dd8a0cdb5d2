"""Slice search benchmark: our SliceFinder vs the ``sliceline`` package on the same binned data.

The listings scenario's test metadata (region, camera, price, listed_at) plus two
columns unrelated to errors (seller, bedrooms) -> eight binned columns, as a
real listings table has; the scenario model's mispredictions are the errors. Both sides
get the same integer codes, alpha, k, minimum support and maximum level. The
peer runs in a child process bounded by a timeout.

    .venv/bin/python bench/slice_search.py --quick     # 10k, 100k rows
    .venv/bin/python bench/slice_search.py             # 10k, 100k, 1M rows

Writes bench/results/slice_search.md and prints it.
"""
from __future__ import annotations

import argparse
import gc
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from measure import ROOT, Timing, ratio, repeat, repeat_bounded, write_fragment

sys.path.insert(0, str(ROOT / "service"))

from blindspots_server.core.metadata_bins import bin_metadata  # noqa: E402
from blindspots_server.core.slice_finder import SliceFinder  # noqa: E402
from blindspots_scenarios.listings import make_scenario, train_model  # noqa: E402

ALPHA, TOP_K, MAX_LEVEL = 0.95, 10, 3


@dataclass
class Outcome:
    rows: int
    columns: int
    levels: int
    min_support: int
    ours: Timing
    peer: Timing
    same: int            # slices in both top-k lists
    ours_k: int
    peer_k: int
    best_score_ours: float
    best_score_peer: float


def _ours(codes: np.ndarray, errors: np.ndarray, min_support: int):
    finder = SliceFinder(ALPHA, TOP_K, MAX_LEVEL, min_support).fit(codes, errors)
    return [(frozenset(s.items), s.score) for s in finder.top_slices_]


def _peer(codes: np.ndarray, errors: np.ndarray, min_support: int):
    from sliceline import Slicefinder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder = Slicefinder(alpha=ALPHA, k=TOP_K, max_l=MAX_LEVEL, min_sup=min_support, verbose=False)
        finder.fit(codes, errors)
    out = []
    for values, stats in zip(finder.top_slices_, finder.top_slices_statistics_):
        items = frozenset((j, int(v)) for j, v in enumerate(values) if v is not None)
        out.append((items, float(stats["slice_score"])))
    return out


def data(rows: int, model) -> tuple[np.ndarray, np.ndarray]:
    split = make_scenario(n_train=10, n_test=rows, n_pool=10, seed=1).test
    errors = (model.predict_proba(split.embeddings).argmax(1) != split.labels).astype(np.float64)
    rng = np.random.default_rng(rows)
    metadata = split.metadata.assign(
        seller=rng.choice(["agency", "private", "developer", "bank"], rows, p=[0.5, 0.3, 0.15, 0.05]),
        bedrooms=rng.integers(1, 7, rows).astype(float))
    binned = bin_metadata(metadata)
    # sliceline treats every code as a level; ours reads codes < 0 as "no predicate".
    # The scenario's metadata has no missing values and few levels, so none is negative.
    assert (binned.codes >= 0).all()
    return np.ascontiguousarray(binned.codes), errors


def measure(rows: int, model, reps: int, limit_s: float) -> Outcome:
    codes, errors = data(rows, model)
    min_support = max(10, round(0.01 * rows))        # the Diagnoser's default
    ours = repeat(lambda: _ours(codes, errors, min_support), reps)
    peer = repeat_bounded(_peer, (codes, errors, min_support), reps, limit_s)
    ours_set = {s for s, _ in ours.value}
    peer_set = {s for s, _ in peer.value} if peer.value is not None else set()
    out = Outcome(rows, codes.shape[1], int(sum(codes.max(axis=0) + 1)), min_support, ours, peer,
                  len(ours_set & peer_set), len(ours_set), len(peer_set),
                  ours.value[0][1] if ours.value else float("nan"),
                  peer.value[0][1] if peer.value else float("nan"))
    del codes, errors
    gc.collect()
    return out


def table(results: list[Outcome]) -> str:
    lines = [f"Slice search: our `SliceFinder` vs `sliceline.Slicefinder` on the same binned scenario "
             f"metadata and mispredictions; alpha {ALPHA}, k {TOP_K}, max level {MAX_LEVEL}, min support "
             "1% of rows. Seconds are medians of the repetitions shown; speed-up = peer s / our s.", "",
             "| rows | columns (levels) | min support | reps | ours s | sliceline s | speed-up "
             "| top-k in both | best score ours / peer |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        agree = f"{r.same}/{max(r.ours_k, r.peer_k)}" if r.peer.finished else "–"
        lines.append(f"| {r.rows:,} | {r.columns} ({r.levels}) | {r.min_support:,} | "
                     f"{r.ours.runs}/{r.peer.runs} | {r.ours.cell()} | {r.peer.cell()} | "
                     f"{ratio(r.ours, r.peer)} | {agree} | {r.best_score_ours:.4f} / "
                     f"{r.best_score_peer:.4f} |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer-timeout", type=float, default=300.0, help="seconds per sliceline run")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    s = make_scenario(n_train=8000, n_test=10, n_pool=10, seed=0)
    model = train_model(s.train, seed=0)
    results = []
    for rows in sizes:
        results.append(measure(rows, model, args.reps, args.peer_timeout))
        print(f"slice search: {rows} rows done", file=sys.stderr)
    text = table(results)
    write_fragment("slice_search", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
