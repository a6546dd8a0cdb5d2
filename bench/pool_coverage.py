"""Does Suggest's pool coverage tell a region the pool lacks from one it holds? Choose a
threshold on dev families, report it on held-out ones.

For each family and seed of the scenario suite (quick sizes): diagnose the test set with the
family's trained model, then for the whole pool and for the pool without each fixable planted
condition's rows (the condition never reached the unlabeled data) measure every region's
coverage (core.pool_coverage, through a pool index built over the rows that remain). A region
*lacks* data when its failures are mostly (>= 50%) one condition and that condition's rows were
taken out of the pool; every other (region, pool) pair is *held*.

    .venv/bin/python bench/pool_coverage.py --split dev --seeds 3        # choose the threshold
    .venv/bin/python bench/pool_coverage.py --split held_out --seeds 3 --threshold T

Prints, per candidate rule, how well it separates lacking from held pairs: recall of lacking,
false-alarm rate on held, balanced accuracy. The rules: ``covered`` below t, ``distance_ratio``
above t (what Suggest reports), and both relative to the same measure over all of the test
set's failures (``relative``, ``ratio_rel``: failures are atypical rows, so their coverage is
low wherever the pool holds them). With --threshold, only that ``covered`` rule.
"""
from __future__ import annotations

import argparse
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from measure import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "service"))

from blindspots_scenarios import build, seeds  # noqa: E402
from blindspots_scenarios.families import DEV, HELD_OUT  # noqa: E402
from blindspots_server.core.diagnosis import Diagnoser  # noqa: E402
from blindspots_server.core.pool_coverage import pool_coverage  # noqa: E402
from blindspots_server.core.pool_index import PoolIndex, normalise  # noqa: E402
from blindspots_server.core.suggest_inputs import TargetRegion, target_regions_of  # noqa: E402

MOSTLY = 0.5
GRID = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)


def measure(family: str, seed: int) -> list[dict]:
    """One row per (pool variant, region): its coverage and whether it lacks data."""
    import torch

    torch.set_num_threads(1)
    inst = build(family, seed, quick=True)
    ids = np.array([f"t{i}" for i in range(len(inst.test.labels))])
    result = Diagnoser().fit(inst.embeddings, inst.test.labels, inst.probabilities, inst.test.metadata, ids)
    regions = [r for r in target_regions_of(result, inst.embeddings, ids, inst.test.labels, inst.probabilities)
               if r.confusion is None]
    if not regions:
        return []
    failing = result.failed
    majority = {}
    for r in regions:
        conds = inst.test.condition[(result.region_of_sample == r.region_id) & failing]
        values, counts = np.unique(conds, return_counts=True)
        best = int(np.argmax(counts))
        majority[r.region_id] = int(values[best]) if counts[best] >= MOSTLY * len(conds) else -1
    pool_unit = normalise(inst.model.embed(inst.pool.inputs))
    fixable = [k for k, c in enumerate(inst.conditions) if c.fixable_by_data]
    rows = []
    for removed in [None, *fixable]:
        keep = np.ones(len(pool_unit), bool) if removed is None else inst.pool.condition != removed
        unit = np.ascontiguousarray(pool_unit[keep])
        index = PoolIndex(unit.shape[1]).build(unit)
        everyone = TargetRegion(region_id=-2, excess_errors=0.0, failure_embeddings=inst.embeddings[failing],
                                failure_indices=np.flatnonzero(failing))
        (overall,) = pool_coverage([everyone], index.search, unit.__getitem__, np.ones(len(unit), bool), seed=seed)
        for c in pool_coverage(regions, index.search, unit.__getitem__, np.ones(len(unit), bool), seed=seed):
            rows.append({"relative": c.covered / max(overall.covered, 1e-9), "ratio_rel": c.distance_ratio / overall.distance_ratio,"family": family, "seed": seed, "removed": "-" if removed is None
                         else inst.conditions[removed].name, "region": c.region_id,
                         "lacks": removed is not None and majority[c.region_id] == removed,
                         "covered": c.covered, "ratio": c.distance_ratio})
    return rows


def separation(rows: list[dict], t: float, key: str = "covered", above: bool = False):
    lacks = np.array([r["lacks"] for r in rows])
    flagged = np.array([(r[key] > t) if above else (r[key] < t) for r in rows])
    recall = float(flagged[lacks].mean()) if lacks.any() else float("nan")
    false_alarm = float(flagged[~lacks].mean()) if (~lacks).any() else float("nan")
    return recall, false_alarm, (recall + 1 - false_alarm) / 2, int(lacks.sum()), int((~lacks).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "held_out"], default="dev")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    specs = [f for f in (DEV if args.split == "dev" else HELD_OUT) if not f.is_null]
    rows = []
    for spec in specs:
        for seed in seeds(args.split, args.seeds):
            got = measure(spec.name, seed)
            rows += got
            lack = [r for r in got if r["lacks"]]
            print(f"{spec.name} seed {seed}: {len(got)} (pool, region) pairs, {len(lack)} lacking; covered of "
                  f"lacking {[round(r['covered'], 2) for r in lack]}, lowest held "
                  f"{min((r['covered'] for r in got if not r['lacks']), default=float('nan')):.2f}", flush=True)
            if args.verbose:
                for r in got:
                    print("   ", r)
    print(f"\n{args.split}: {len(rows)} pairs")
    print("| rule | recall of lacking | false alarms on held | balanced accuracy | lacking | held |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in ([args.threshold] if args.threshold is not None else GRID):
        recall, alarm, balanced, n_lack, n_held = separation(rows, t)
        print(f"| covered < {t:g} | {recall:.2f} | {alarm:.3f} | {balanced:.3f} | {n_lack} | {n_held} |")
    for key, above, grid in (() if args.threshold is not None else("relative", False, (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
                             ("ratio", True, (1.1, 1.2, 1.3, 1.4, 1.5, 1.7, 2.0)),
                             ("ratio_rel", True, (1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5))):
        for t in grid:
            recall, alarm, balanced, n_lack, n_held = separation(rows, t, key, above)
            print(f"| {key} {'>' if above else '<'} {t:g} | {recall:.2f} | {alarm:.3f} | {balanced:.3f} | {n_lack} | {n_held} |")
    for family in sorted({r["family"] for r in rows}):
        sub = [r for r in rows if r["family"] == family]
        lack = [r["covered"] for r in sub if r["lacks"]]
        held = [r["covered"] for r in sub if not r["lacks"]]
        print(f"{family}: lacking covered median {np.median(lack) if lack else float('nan'):.2f} "
              f"(n={len(lack)}), held median {np.median(held):.2f} min {min(held):.2f} (n={len(held)})")


if __name__ == "__main__":
    main()
