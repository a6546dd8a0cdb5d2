"""Closed-loop benchmark: does labeling the suggested pool samples fix the failures?

For each seed: build the listings scenario, train on ``train``, diagnose the test
set, suggest ``budget`` pool samples with every strategy, add them with their
true labels to ``train``, retrain with the same seed, and measure accuracy (vs
true labels) on the failing slices (test rows in a planted data gap) and overall.

    .venv/bin/python bench/closed_loop.py            # 5 seeds, budgets 300 and 600
    .venv/bin/python bench/closed_loop.py --quick    # 3 seeds, budget 300

Writes bench/results/closed_loop.md (a markdown fragment) and prints it.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from measure import ROOT, write_fragment

sys.path.insert(0, str(ROOT / "service"))

from blindspots_server.core.pool_index import PoolIndex, normalise  # noqa: E402
from blindspots_server.core.suggest_inputs import target_regions_of  # noqa: E402
from blindspots_server.core.suggest import (STRATEGIES, PoolData, TargetRegion,  # noqa: E402
                                            suggest_candidates)
from blindspots_scenarios.listings import make_scenario, train_model  # noqa: E402


@dataclass
class Outcome:
    strategy: str
    budget: int
    seed: int
    gap_accuracy: float
    overall_accuracy: float
    picked_in_gaps: float     # share of picks that lie in a planted data gap
    seconds: float


def diagnose(embeddings, labels, probs, metadata, ids) -> tuple[list[TargetRegion], str]:
    """Failure regions of the test set: the Diagnoser when present, else an HDBSCAN fallback."""
    try:
        from blindspots_server.core.diagnosis import Diagnoser
    except ImportError:
        return _hdbscan_regions(embeddings, labels, probs, ids), "hdbscan fallback"
    result = Diagnoser().fit(embeddings, labels, probs, metadata, ids)
    return target_regions_of(result, embeddings, ids), "Diagnoser"


def _hdbscan_regions(embeddings, labels, probs, ids) -> list[TargetRegion]:
    import hdbscan
    from sklearn.decomposition import PCA

    failed = probs.argmax(1) != labels
    rows = np.flatnonzero(failed)
    x = PCA(16, random_state=0).fit_transform(normalise(embeddings[rows]))
    cluster = hdbscan.HDBSCAN(min_cluster_size=25).fit_predict(x)
    base = failed.mean()
    regions = []
    for c in sorted(set(cluster) - {-1}):
        members = rows[cluster == c]
        regions.append(TargetRegion(region_id=int(c), excess_errors=len(members) * (1 - base),
                                    failure_embeddings=embeddings[members], failure_indices=members,
                                    failure_ids=np.asarray(ids)[members]))
    return regions


def accuracy(model, split, gap: np.ndarray) -> tuple[float, float]:
    pred = model.predict_proba(split.embeddings).argmax(1)
    right = pred == split.true_labels
    return float(right[gap].mean()), float(right.mean())


def run_seed(seed: int, budgets: list[int], sizes: dict) -> tuple[list[Outcome], str]:
    s = make_scenario(seed=seed, **sizes)
    model = train_model(s.train, seed=seed)
    test_probs = model.predict_proba(s.test.embeddings)
    pool_probs = model.predict_proba(s.pool.embeddings)
    gap_test = s.test.in_data_gap
    gap_pool = s.pool.in_data_gap
    regions, how = diagnose(s.test.embeddings, s.test.labels, test_probs, s.test.metadata, s.test.ids)
    gap_acc, all_acc = accuracy(model, s.test, gap_test)
    out = [Outcome("no addition", 0, seed, gap_acc, all_acc, float("nan"), 0.0)]
    pool = PoolData(s.pool.embeddings, pool_probs, s.pool.metadata)
    index = PoolIndex(s.pool.embeddings.shape[1]).build(s.pool.embeddings)
    for budget in budgets:
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            picks = suggest_candidates(strategy, budget, pool, regions, index=index, seed=seed,
                                       labeled_embeddings=s.train.embeddings)
            seconds = time.perf_counter() - t0
            rows = np.array([c.pool_index for c in picks], dtype=np.int64)
            # Buying labels: the pool's true labels become the training labels.
            bought = s.pool.subset(rows)
            bought.labels = bought.true_labels.copy()
            retrained = train_model(s.train.concat(bought), seed=seed)
            gap_acc, all_acc = accuracy(retrained, s.test, gap_test)
            out.append(Outcome(strategy, budget, seed, gap_acc, all_acc,
                               float(gap_pool[rows].mean()) if len(rows) else 0.0, seconds))
    return out, f"{how}: {len(regions)} regions"


def table(outcomes: list[Outcome], seeds: list[int], notes: list[str]) -> str:
    def ms(values) -> str:
        v = np.asarray(values) * 100
        return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"

    lines = [f"Closed loop on the listings scenario, {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
             "accuracy in % vs true labels, mean ± std over seeds.",
             "",
             "| budget | strategy | failing-slice acc | overall acc | picks in data gaps | suggest s |",
             "|---:|---|---:|---:|---:|---:|"]
    keys = []
    for o in outcomes:
        if (o.budget, o.strategy) not in keys:
            keys.append((o.budget, o.strategy))
    for budget, strategy in keys:
        rows = [o for o in outcomes if o.budget == budget and o.strategy == strategy]
        picked = "–" if budget == 0 else ms([o.picked_in_gaps for o in rows])
        secs = "–" if budget == 0 else f"{np.mean([o.seconds for o in rows]):.2f}"
        lines.append(f"| {budget} | {strategy} | {ms([o.gap_accuracy for o in rows])} | "
                     f"{ms([o.overall_accuracy for o in rows])} | {picked} | {secs} |")
    lines += ["", "Regions per seed: " + "; ".join(notes) + "."]
    verdict = []
    for budget in sorted({o.budget for o in outcomes} - {0}):
        mean = {st: np.mean([o.gap_accuracy for o in outcomes if o.budget == budget and o.strategy == st])
                for st in STRATEGIES}
        best_base = max((v, k) for k, v in mean.items() if k != "targeted")
        ok = mean["targeted"] > best_base[0]
        verdict.append(f"budget {budget}: targeted {mean['targeted'] * 100:.1f} vs best baseline "
                       f"{best_base[1]} {best_base[0] * 100:.1f} -> {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines + ["", "Acceptance (targeted beats every baseline on failing-slice accuracy): "
                              + "; ".join(verdict) + ".", ""])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, budget 300")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--budgets", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds or (3 if args.quick else 5)))
    budgets = args.budgets or ([300] if args.quick else [300, 600])
    outcomes, notes = [], []
    for seed in seeds:
        res, note = run_seed(seed, budgets, {})
        outcomes += res
        notes.append(f"seed {seed} {note}")
        print(f"seed {seed} done ({note})", file=sys.stderr)
    text = table(outcomes, seeds, notes)
    write_fragment("closed_loop", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
