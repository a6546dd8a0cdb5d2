"""Where a strategy's picks land and what they fix, per planted condition of a suite family.

For each seed: the family's trained model, the Diagnoser's regions, each strategy's picks
(how many fall in each planted condition of the pool), then a retrain from scratch with
their true labels and the accuracy on each condition's test rows, before and after. It
explains an active-learning result (which condition a budget went to, and whether more
picks there still helped); it is not a benchmark of its own.

    .venv/bin/python bench/al_per_condition.py digits_small --split heldout --seeds 1005 1006 1010
"""
from __future__ import annotations

import argparse
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import active_learning as al  # noqa: E402
from al_baselines import BASELINES, ModelView, query  # noqa: E402
from al_suite import sized, suite_family  # noqa: E402
from blindspots_server.core.pool_index import PoolIndex  # noqa: E402
from blindspots_server.core.suggest import PoolData, suggest_candidates  # noqa: E402


def per_condition(name: str, seed: int, budgets: list[int], strategies: list[str]) -> list[str]:
    from blindspots_scenarios import build

    family, n_test = sized(name)
    inst = build(family, seed, quick=True, n_test=n_test)
    f = suite_family(name, seed, inst)
    m = f.trained
    test_emb, test_probs = m.embed(f.test.x), m.predict_proba(f.test.x)
    pool_emb, pool_probs = m.embed(f.pool.x), m.predict_proba(f.pool.x)
    regions, num_failures = al.diagnose(f, test_emb, test_probs)
    view = ModelView(m.embed(f.train.x), f.train.y, pool_emb, pool_probs, m.hidden(f.pool.x), f.num_classes)
    data, index = PoolData(pool_emb, pool_probs, f.pool.meta), PoolIndex(pool_emb.shape[1]).build(pool_emb)
    conds, test_cond, pool_cond = inst.conditions, inst.test.condition, inst.pool.condition

    def accuracy(right: np.ndarray) -> str:
        return ", ".join(f"{c.name} {right[test_cond == k].mean():.2f}" for k, c in enumerate(conds)
                         if c.fixable_by_data)

    before = m.predict_proba(f.test.x).argmax(1) == f.test.y_true
    lines = [f"{name} seed {seed}: regions "
             + "; ".join(f"{r.kind if r.confusion is None else 'confusion %d->%d' % r.confusion} "
                         f"{len(r.failure_indices)} failures"
                         + (" (labels do not follow inputs)" if r.labels_predictable is False else "")
                         for r in regions),
             f"  before: failing {before[f.failing].mean():.3f}; {accuracy(before)}"]
    for budget in budgets:
        for st in strategies:
            if st == "targeted":
                picks = np.array([c.pool_index for c in suggest_candidates(
                    "targeted", budget, data, regions, labeled_embeddings=view.train_embeddings, index=index,
                    seed=seed, num_failures=num_failures)], dtype=np.int64)
            else:
                picks = query(st, view, budget, seed)
            bought = f.pool.take(picks)
            model = f.fit(np.concatenate([f.train.x, bought.x]), np.concatenate([f.train.y, bought.y_true]), seed)
            right = model.predict_proba(f.test.x).argmax(1) == f.test.y_true
            where = ", ".join(f"{c.name} {int((pool_cond[picks] == k).sum())}" for k, c in enumerate(conds))
            lines.append(f"  {budget} {st:9s} failing {right[f.failing].mean():.3f}; {accuracy(right)}; "
                         f"picks: {where}, none {int((pool_cond[picks] < 0).sum())}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", help="a suite family (blindspots_scenarios)")
    parser.add_argument("--split", choices=sorted(al.SPLITS), default="heldout")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the split's first 3")
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 600])
    parser.add_argument("--strategies", nargs="+", default=["targeted", "margin"],
                        choices=["targeted", *BASELINES])
    args = parser.parse_args(argv)
    import torch
    from blindspots_scenarios import seeds

    torch.set_num_threads(1)
    for seed in args.seeds or seeds("dev" if args.split == "dev" else "held_out", 3):
        print("\n".join(per_condition(args.family, seed, args.budgets, args.strategies)), flush=True)


if __name__ == "__main__":
    main()
