""""More like these" (Suggest strategy ``similar``): given a few failures of one planted condition,
how many of the picks come from that condition in the pool, against the plain ways to ask the same.

For each family and seed of the scenario suite (quick sizes) and each condition that more data can
fix with at least ``--queries`` failures in the test set: ``--queries`` of its failing test rows
(a seeded draw: what an engineer finds by looking), and a budget of ``--budget`` pool rows. Side by
side on the same pool:

- ``similar``: ``suggest_candidates("similar", ...)`` through a pool index, as the server runs it;
- ``nearest``: the pool rows nearest to any query row (cosine, exact), the plain kNN answer;
- ``centroid``: the pool rows nearest to the mean of the query rows (what "sort by similarity to
  several samples" gives in tools that average the queries);
- ``random``: a seeded draw from the pool.

Read: precision (the share of picks inside the queried condition), and each peer's paired difference
from ``similar`` over the (family, seed, condition) cases with a 95% t-interval. ``similar`` reuses the
targeted strategy's scoring; the one setting of its own, how much the query rows' mean counts
(targeted.QUERY_MEAN_SHARE), was chosen on the dev half with this script's cases.

    .venv/bin/python bench/more_like.py --split dev --seeds 3
    .venv/bin/python bench/more_like.py --split held_out --seeds 3
"""
from __future__ import annotations

import argparse
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from measure import ROOT, environment_line  # noqa: E402

sys.path.insert(0, str(ROOT / "service"))

from blindspots_scenarios import build, seeds  # noqa: E402
from blindspots_scenarios.families import DEV, HELD_OUT  # noqa: E402
from blindspots_server.core.pool_index import PoolIndex, normalise  # noqa: E402
from blindspots_server.core.suggest import PoolData, query_target, suggest_candidates  # noqa: E402

PEERS = ("nearest", "centroid", "random")


def cases(family: str, seed: int, queries: int, budget: int) -> list[dict]:
    """One row per fixable condition with enough failures: each method's precision."""
    import torch

    torch.set_num_threads(1)
    inst = build(family, seed, quick=True)
    test_unit = normalise(inst.embeddings)
    pool_unit = normalise(inst.model.embed(inst.pool.inputs))
    index = PoolIndex(pool_unit.shape[1]).build(pool_unit)
    pool = PoolData(pool_unit, None, pd.DataFrame(index=range(len(pool_unit))), unit_rows=True)
    rng = np.random.default_rng(seed)
    rows = []
    for k, condition in enumerate(inst.conditions):
        failing = np.flatnonzero(inst.failed & (inst.test.condition == k))
        in_pool = inst.pool.condition == k
        if not condition.fixable_by_data or len(failing) < queries or in_pool.sum() < budget:
            continue
        q = np.sort(rng.choice(failing, queries, replace=False))
        picks = {"similar": [c.pool_index for c in suggest_candidates(
            "similar", budget, pool, [], index=index, query=query_target(inst.embeddings[q], q))]}
        picks["nearest"] = np.argsort((1 - test_unit[q] @ pool_unit.T).min(axis=0), kind="stable")[:budget]
        centre = normalise(test_unit[q].mean(axis=0, keepdims=True))[0]
        picks["centroid"] = np.argsort(1 - pool_unit @ centre, kind="stable")[:budget]
        picks["random"] = rng.choice(len(pool_unit), budget, replace=False)
        rows.append({"family": family, "seed": seed, "condition": condition.name, "kind": condition.kind,
                     "pool_share": float(in_pool.mean()),
                     **{m: float(in_pool[np.asarray(p)].mean()) for m, p in picks.items()}})
    return rows


def interval(d: np.ndarray) -> str:
    if len(d) < 2:
        return f"{100 * d.mean():+.1f}"
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return f"{100 * d.mean():+.1f} [{100 * (d.mean() - half):+.1f}, {100 * (d.mean() + half):+.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "held_out"], default="dev")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--budget", type=int, default=100)
    args = parser.parse_args()
    specs = [f for f in (DEV if args.split == "dev" else HELD_OUT) if not f.is_null]
    rows = []
    for spec in specs:
        for seed in seeds(args.split, args.seeds):
            got = cases(spec.name, seed, args.queries, args.budget)
            rows += got
            print(f"{spec.name} seed {seed}: " + "; ".join(
                f"{r['condition']} similar {r['similar']:.2f} nearest {r['nearest']:.2f} centroid "
                f"{r['centroid']:.2f} random {r['random']:.2f}" for r in got), flush=True)
    frame = pd.DataFrame(rows)
    print(f"\n{args.split}: {len(frame)} cases ({args.queries} query failures, budget {args.budget}); precision %, "
          "mean over the cases of each family")
    print("| family | cases | similar | nearest | centroid | random |")
    print("|---|---:|---:|---:|---:|---:|")
    for family, sub in frame.groupby("family", sort=False):
        print(f"| {family} | {len(sub)} | " + " | ".join(f"{100 * sub[m].mean():.1f}"
                                                       for m in ("similar", *PEERS)) + " |")
    print("\n| similar minus | paired mean [95% CI], points | similar ahead in |")
    print("|---|---:|---:|")
    for peer in PEERS:
        d = (frame["similar"] - frame[peer]).to_numpy()
        print(f"| {peer} | {interval(d)} | {(d > 0).sum()} of {len(d)} (ties {(d == 0).sum()}) |")
    print("\n" + environment_line())


if __name__ == "__main__":
    main()
