"""Choose the targeted strategy's defaults on the dev split only.

Runs a few configurations of the budget rules (share exponent, fragment
merging, margin fallback basis, representativeness weight) on the dev families
and seeds, and compares each with the best scikit-activeml baseline from a
cache written by ``active_learning.py --split dev --cache PATH``.

    .venv/bin/python bench/al_dev_sweep.py --cache DEV_CACHE.pkl   # written by active_learning.py --split dev --cache

Prints, per configuration: mean paired Δ vs the best baseline over all dev
families and budgets, the worst family's Δ, and Δ on the misleading families.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

import active_learning as al  # noqa: E402
from al_baselines import BASELINES  # noqa: E402
from blindspots_server.core import targeted, targeted_budget  # noqa: E402
from blindspots_server.core.pool_index import PoolIndex  # noqa: E402
from blindspots_server.core.suggest import PoolData, suggest_candidates  # noqa: E402

CONFIGS_SUITE = {
    "sqrt+merge+rep": (0.5, True, "none", 0.5),
    "sqrt+merge+rep+fallback(failures)": (0.5, True, "failures", 0.5),
    "sqrt+merge+rep+fallback(weak)": (0.5, True, "weak", 0.5),
}
CONFIGS_INSIDE = {
    # name: (..., uncertainty weight inside a region)
    "weak, uncertainty 0.5": (0.5, True, "weak", 0.5, 0.5),
    "weak, uncertainty 0.25": (0.5, True, "weak", 0.5, 0.25),
    "weak, uncertainty 0": (0.5, True, "weak", 0.5, 0.0),
    "weak, uncertainty 0, representative 1": (0.5, True, "weak", 1.0, 0.0),
    "weak, uncertainty 0.5, label noise 0.5": (0.5, True, "weak", 0.5, 0.5, None, 0.5),
    "weak, uncertainty 0, label noise 0.5": (0.5, True, "weak", 0.5, 0.0, None, 0.5),
    "weak, uncertainty 0, label noise 1": (0.5, True, "weak", 0.5, 0.0, None, 1.0),
}
# Third sweep (dev digits families added): the default of the second sweep, then one change each.
DEFAULT = {"exponent": 0.5, "merge": True, "basis": "weak", "rep": 0.5, "uncertainty": 0.0,
           "label_noise": 0.5, "noise_to": "collect", "merge_kinds": True}
CONFIGS_NOISE = {
    "default": DEFAULT,
    "label-noise share to margin": {**DEFAULT, "noise_to": "margin"},
    "label noise kept apart": {**DEFAULT, "merge_kinds": False},
    "label-noise share to margin, kept apart": {**DEFAULT, "noise_to": "margin", "merge_kinds": False},
    "uncertainty 0.25": {**DEFAULT, "uncertainty": 0.25},
    "label noise 0": {**DEFAULT, "label_noise": 0.0},
}
# Fourth sweep: how regions are typed (region_typing.py), the third sweep's default first.
# name: (LABEL_LIFT_MAX, LABEL_CONCENTRATION_MAX, FAILURE_LIFT_MAX)
TYPING = {"neighbours": (None, 1.0, None), "label test": (0.05, 0.7, None),
          "label test + failure lift": (0.05, 0.7, 0.2)}
DEFAULT_4 = {**DEFAULT, "merge_kinds": False, "typing": "neighbours"}
CONFIGS_TYPING = {
    "neighbour typing (third sweep's default)": DEFAULT_4,
    "label test": {**DEFAULT_4, "typing": "label test"},
    "label test, label noise 0": {**DEFAULT_4, "typing": "label test", "label_noise": 0.0},
    "label test, margin takes the unexplained failures": {**DEFAULT_4, "typing": "label test", "basis": "failures"},
    "label test, margin takes the unexplained excess": {**DEFAULT_4, "typing": "label test", "basis": "excess"},
    "label test, unpredictable labels 0.5": {**DEFAULT_4, "typing": "label test", "unpredictable": 0.5},
    "label test, unpredictable labels 0.25": {**DEFAULT_4, "typing": "label test", "unpredictable": 0.25},
    "label test, unpredictable labels 0": {**DEFAULT_4, "typing": "label test", "unpredictable": 0.0},
}
# The fifth sweep (a least margin share, CONFIGS_HEDGE) ran at commit 5be47ad; not adopted, removed.
DEFAULT_5 = {**DEFAULT_4, "typing": "label test", "unpredictable": 0.25}
# Sixth sweep: two-class typing (region_typing.FAILURE_LIFT_MAX); only two-class families change.
CONFIGS_TWO_CLASS = {
    "fourth sweep's default": DEFAULT_5,
    "failure lift": {**DEFAULT_5, "typing": "label test + failure lift"},
    "failure lift, label noise 0": {**DEFAULT_5, "typing": "label test + failure lift", "label_noise": 0.0},
}
# Eighth sweep: collect near the confusions no region holds (unheld_confusions.py).
DEFAULT_8 = {**DEFAULT_5, "typing": "label test + failure lift"}
CONFIGS_UNHELD = {
    "sixth sweep's default": DEFAULT_8,
    "unheld confusions, all": {**DEFAULT_8, "unheld": "all"},
    "unheld confusions, gaps only": {**DEFAULT_8, "unheld": "gaps"},
    "unheld confusions, gaps only, weight 0.5": {**DEFAULT_8, "unheld": "gaps", "unheld_weight": 0.5},
}
# Ninth sweep: which weights count in the held share (the weak-diagnosis fallback).
DEFAULT_9 = {**DEFAULT_8, "unheld": "gaps", "unheld_weight": 0.5}
CONFIGS_HELD = {
    "eighth sweep's default": DEFAULT_9,
    "held share: unpredictable labels count in full": {**DEFAULT_9, "held": "label_noise"},
    "held share: every region counts in full": {**DEFAULT_9, "held": "full"},
}
# The tenth sweep (a cap on a group's picks per failure, CONFIGS_CAP) ran at commit fd2e767; not adopted, removed.
# The eleventh (a region's candidates only where the test set fails locally, CONFIGS_SIDE) ran at 0207ba5; not
# adopted, removed.
CONFIGS = {
    # name: (share exponent, merge fragments, fallback basis, representative weight)
    "proportional, no merge, no fallback": (1.0, False, "none", 0.0),
    "sqrt+merge+rep": (0.5, True, "none", 0.5),
    "sqrt+merge+rep+fallback(failures)": (0.5, True, "failures", 0.5),
    "sqrt+merge+rep+fallback(excess)": (0.5, True, "excess", 0.5),
}


def _typing(config: tuple | dict) -> str:
    return config.get("typing", "neighbours") if isinstance(config, dict) else "neighbours"


def _apply_typing(name: str) -> None:
    from blindspots_server.core import region_typing

    (region_typing.LABEL_LIFT_MAX, region_typing.LABEL_CONCENTRATION_MAX,
     region_typing.FAILURE_LIFT_MAX) = TYPING[name]


def _apply(config: tuple | dict) -> None:
    from blindspots_server.core import suggest

    targeted_budget.UNPREDICTABLE_WEIGHT = config.get("unpredictable") if isinstance(config, dict) else None
    targeted_budget.UNHELD_CONFUSIONS = config.get("unheld", "off") if isinstance(config, dict) else "off"
    targeted_budget.UNHELD_WEIGHT = config.get("unheld_weight", 1.0) if isinstance(config, dict) else 1.0
    targeted_budget.HELD_WEIGHTS = config.get("held", "collection") if isinstance(config, dict) else "collection"
    if isinstance(config, dict):
        config = (config["exponent"], config["merge"], config["basis"], config["rep"], config["uncertainty"],
                  None, config["label_noise"], config["noise_to"], config["merge_kinds"])
    targeted_budget.LABEL_NOISE_SHARE_TO = config[7] if len(config) > 7 else "collect"
    targeted_budget.MERGE_ACROSS_KINDS = config[8] if len(config) > 8 else True
    exponent, merge, basis, rep = config[:4]
    suggest.DEFAULT_UNCERTAINTY_WEIGHT = config[4] if len(config) > 4 else 0.5
    targeted_budget.LABEL_NOISE_WEIGHT = config[6] if len(config) > 6 else 0.0
    targeted_budget.SHARE_EXPONENT = exponent
    targeted_budget.FALLBACK_BASIS = basis
    targeted.REPRESENTATIVE_WEIGHT = rep
    targeted_budget.MERGE_FRAGMENTS = merge


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 600])
    parser.add_argument("--suite", nargs="*", default=["latent_six", "cancer_drift", "latent_rare_wide"])
    parser.add_argument("--second", action="store_true",
                        help="the second sweep: fallback rules, with margin itself as a reference")
    parser.add_argument("--kinds", nargs="+", default=["base", "ambiguous_pool", "confident_errors", "noisy_test"])
    parser.add_argument("--out", default=None, help="pickle of the targeted outcomes per configuration")
    parser.add_argument("--configs", nargs="+", default=None,
                        help="run only these configurations (names from CONFIGS / CONFIGS_SUITE / CONFIGS_INSIDE / CONFIGS_NOISE / CONFIGS_TYPING / CONFIGS_TWO_CLASS / CONFIGS_UNHELD / CONFIGS_HELD)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    configs = CONFIGS_SUITE if args.second else CONFIGS
    if args.configs:
        every = {**CONFIGS, **CONFIGS_SUITE, **CONFIGS_INSIDE, **CONFIGS_NOISE, **CONFIGS_TYPING, **CONFIGS_TWO_CLASS,
                 **CONFIGS_UNHELD, **CONFIGS_HELD}
        configs = {name: every[name] for name in args.configs}
    results: dict[str, list] = {name: [] for name in [*configs, "margin (reference)"]}
    for draw in range(args.draws):
        for f in al.families("dev", draw, args.kinds, args.suite):
            t0 = time.perf_counter()
            model = f.fit(f.train.x, f.train.y, f.seed)
            test_probs, pool_probs = model.predict_proba(f.test.x), model.predict_proba(f.pool.x)
            test_emb, pool_emb = model.embed(f.test.x), model.embed(f.pool.x)
            diagnosed = {}
            for typing in dict.fromkeys(_typing(c) for c in configs.values()):
                _apply_typing(typing)
                diagnosed[typing] = al.diagnose(f, test_emb, test_probs)
            retrained: dict[tuple, tuple[float, float]] = {}   # same picks in the same order: train once
            data = PoolData(pool_emb, pool_probs, f.pool.meta)
            index = PoolIndex(pool_emb.shape[1]).build(pool_emb)
            for budget in args.budgets:
                margin = np.argsort(-(1 - np.diff(np.sort(pool_probs, 1)[:, -2:], axis=1)[:, 0]),
                                    kind="stable")[:budget]
                failing, overall = al._evaluate(f, margin, f.seed)
                results["margin (reference)"].append(al.Outcome(f.name, f.kind, f.seed, budget, "targeted",
                                                                failing, overall, {}, 0.0))
            for name, config in configs.items():
                _apply(config)
                regions, num_failures = diagnosed[_typing(config)]
                for budget in args.budgets:
                    if regions:
                        picks = np.array([c.pool_index for c in suggest_candidates(
                            "targeted", budget, data, regions, index=index, seed=f.seed,
                            num_failures=num_failures)], dtype=np.int64)
                    else:
                        picks = np.argsort(-(1 - np.diff(np.sort(pool_probs, 1)[:, -2:], axis=1)[:, 0]))[:budget]
                    key = tuple(picks.tolist())
                    if key not in retrained:
                        retrained[key] = al._evaluate(f, picks, f.seed)
                    failing, overall = retrained[key]
                    results[name].append(al.Outcome(f.name, f.kind, f.seed, budget, "targeted", failing,
                                                    overall, {k: float(v[picks].mean())
                                                              for k, v in f.pool_tags.items()}, 0.0))
            print(f"{f.name} seed {f.seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_bytes(pickle.dumps(results))
    cache = pickle.loads(Path(args.cache).read_bytes()) if Path(args.cache).exists() else {}
    report(results, cache)


def report(results: dict[str, list], cache: dict) -> None:
    """Per configuration: targeted's failing-slice accuracy per family and budget, its mean,
    and (where the cache holds the dev baselines) the paired Δ vs the best one."""
    for name, outcomes in results.items():
        print(f"\n{name}")
        accs = []
        for fam in dict.fromkeys(o.family for o in outcomes):
            for budget in sorted({o.budget for o in outcomes if o.family == fam}):
                mine = [o for o in outcomes if o.family == fam and o.budget == budget]
                acc = float(np.mean([o.failing_acc for o in mine]))
                accs.append(acc)
                line = f"  {fam:<40} {budget:>4}  targeted {100 * acc:.1f}"
                base = [cache[(fam, o.seed, budget, st)] for o in mine for st in BASELINES
                        if (fam, o.seed, budget, st) in cache]
                if len(base) == len(mine) * len(BASELINES):
                    r = al.summary_rows(mine + base)[0]
                    m, lo, hi = (100 * v for v in r["diff"])
                    line += f"  best {r['best']} {100 * r['mean'][r['best']]:.1f}  Δ {m:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                shares = {k: float(np.mean([o.pick_shares.get(k, np.nan) for o in mine]))
                          for k in mine[0].pick_shares}
                if shares:
                    line += "  picks: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items())
                print(line)
        print(f"  mean failing-slice accuracy {100 * np.mean(accs):.2f}, worst {100 * min(accs):.1f}")


if __name__ == "__main__":
    main()
