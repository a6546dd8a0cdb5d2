"""Whole targeted suggestion at ROWS (default 1M) pool rows, timed alone (bench/pool_search.py's targeted_seconds).

Run from a worktree root with PYTHONPATH=service; LN=1 types region 2 of 3 label_noise. Prints one RESULT line.
CONFUSIONS=1 times instead what Suggest adds on the run side: finding and typing the confusions no region
holds (core.suggest_inputs.confusion_targets) on a ROWS-row test set of 10 classes, 5% errors, no region.
"""
import os, sys, time
sys.path.insert(0, "bench")
import numpy as np, pandas as pd
import pool_search as p
from blindspots_server.core.pool_index import PoolIndex
from blindspots_server.core.suggest import PoolData, TargetRegion, suggest_candidates
import blindspots_server
rows = int(os.environ.get("ROWS", 1_000_000))
if os.environ.get("CONFUSIONS"):
    from blindspots_server.core.suggest_inputs import confusion_targets
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, p.DIM)).astype(np.float32)
    labels = rng.integers(0, 10, rows)
    predicted = labels.copy()
    wrong = rng.random(rows) < 0.05
    predicted[wrong] = (labels[wrong] + 1) % 10
    probs = np.full((rows, 10), 0.01, dtype=np.float32)
    probs[np.arange(rows), predicted] = 0.91
    t0 = time.perf_counter()
    found = confusion_targets(labels, probs, labels != predicted, np.full(rows, -1), x, np.arange(rows))
    print(f"RESULT confusion_targets rows={rows} targets={len(found)} seconds={time.perf_counter() - t0:.2f}")
    sys.exit(0)
pool = p.mixture(rows, seed=1)
t0 = time.perf_counter()
idx = PoolIndex(p.DIM).build(pool)
build = time.perf_counter() - t0
if os.environ.get("LN"):
    regions, budget = 3, 10_000
    failures = p.mixture(regions * 1000, seed=3)
    targets = [TargetRegion(region_id=r, excess_errors=float(100 * (regions - r)),
                            failure_embeddings=failures[r::regions],
                            failure_indices=np.arange(r, len(failures), regions),
                            kind="label_noise" if r == 2 else "data_gap")
               for r in range(regions)]
    data = PoolData(embeddings=pool, probabilities=None, metadata=pd.DataFrame(index=pd.RangeIndex(len(pool))))
    t0 = time.perf_counter()
    picks = suggest_candidates("targeted", budget, data, targets, index=idx)
    s = time.perf_counter() - t0
    assert len(picks) == budget
    from collections import Counter
    extra = " regions_of_picks=" + str(sorted(Counter(getattr(c, "region_id", None) for c in picks).items()))
else:
    s = p.targeted_seconds(pool, idx, budget=10_000)
    extra = ""
print(f"RESULT cwd={os.getcwd()} pkg={os.path.dirname(blindspots_server.__file__)} index={idx.description} "
      f"ln={bool(os.environ.get('LN'))} build_s={build:.2f} targeted_s={s:.2f} load={os.getloadavg()}{extra}", flush=True)
