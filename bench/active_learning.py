"""Closed-loop active-learning benchmark v2: targeted vs scikit-activeml baselines.

For each family and seed: train the family's model on ``train``, diagnose the
test set (blindspots' Diagnoser), pick ``budget`` pool rows with every strategy
from the same trained model, buy their true labels, retrain from scratch with
the same seed and measure accuracy (vs true labels) on the failing slices.
Baselines are scikit-activeml's margin and entropy uncertainty sampling,
CoreSet (k-center greedy), BADGE, TypiClust and random sampling, run in the
same process on the same data. Differences are paired by seed: mean and a 95%
t-interval of (targeted - best baseline), the best baseline being the one with
the highest mean on that family and budget (chosen after the fact, which
favours the baselines).

Families: the listings scenario in two worlds (dev: world 7, held-out: world
13) and the same three uncertainty-misleading variants of each (ambiguous pool
rows, confidently wrong regions, a noisy-label test region: al_families.py);
the suite's families (``blindspots_scenarios``) when that package is present.

    .venv/bin/python bench/active_learning.py --split heldout   # seeds 0-4, budgets 300 600
    .venv/bin/python bench/active_learning.py --split dev       # seeds 100-102 (choose defaults here)
    .venv/bin/python bench/active_learning.py --quick           # 2 seeds, budget 300, held-out base family

Writes bench/results/active_learning.md (a markdown fragment) and prints it.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

# One thread per library: the models are small, and on a shared machine
# oversubscribed BLAS / torch threads cost far more than they save.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from measure import ROOT, write_fragment  # noqa: E402

sys.path.insert(0, str(ROOT / "service"))

from al_baselines import BASELINES, ModelView, library_version, query  # noqa: E402
from al_families import VARIANTS, Family, Outcome, listings_family  # noqa: E402
from blindspots_server.core.pool_index import PoolIndex  # noqa: E402
from blindspots_server.core.suggest import PoolData, TargetRegion, suggest_candidates  # noqa: E402
from blindspots_server.core.suggest_inputs import target_regions_of  # noqa: E402

# "draws": the seeds a run takes by default; "seeds": every seed of the half (--draws up to
# their number; past them only the suite's families run).
SPLITS = {"dev": {"world": 7, "seeds": [100, 101, 102], "draws": 3},
          "heldout": {"world": 13, "seeds": list(range(10)), "draws": 5}}
MISLEADING = ("ambiguous_pool", "confident_errors")
# References, not strategies: they read the pool's true condition tags (which no real strategy has)
# to bound what any pick could do on a family's failing slices. Never a "best baseline".
ORACLES = ("oracle", "oracle_unc", "oracle_half")


def oracle_picks(name: str, f: Family, view: ModelView, budget: int, seed: int) -> np.ndarray:
    """``oracle``: pool rows of the failing conditions at random; ``oracle_unc``: those rows, most
    uncertain (entropy) first; ``oracle_half``: half the budget from them at random, half by entropy.
    Each tops up with entropy sampling when the conditions hold fewer pool rows than it takes."""
    inside = np.flatnonzero(f.pool_tags["in failing condition"])
    p = np.clip(view.pool_probabilities, 1e-12, 1.0)
    entropy = -(p * np.log(p)).sum(1)
    if name == "oracle_unc":
        first = inside[np.argsort(-entropy[inside], kind="stable")][:budget]
    else:
        take = budget if name == "oracle" else budget // 2
        first = np.random.default_rng([seed, 11]).permutation(inside)[:take]
    rest = np.setdiff1d(np.argsort(-entropy, kind="stable")[:budget + len(first)], first,
                        assume_unique=True)
    ranked_rest = rest[np.argsort(-entropy[rest], kind="stable")][:budget - len(first)]
    return np.concatenate([first, ranked_rest]).astype(np.int64)


def diagnose(f: Family, embeddings: np.ndarray, probs: np.ndarray) -> tuple[list[TargetRegion], int]:
    """Failure regions of the test set as the server would hand them to Suggest (with the
    confusions no region holds), and the number of failures."""
    from blindspots_server.core.diagnosis import Diagnoser

    result = Diagnoser().fit(embeddings, f.test.y, probs, f.test.meta, f.test.ids)
    return (target_regions_of(result, embeddings, f.test.ids, f.test.y, probs),
            int(result.failed.sum()))


def _evaluate(f: Family, picks: np.ndarray, seed: int) -> tuple[float, float]:
    bought = f.pool.take(picks)
    x = np.concatenate([f.train.x, bought.x])
    y = np.concatenate([f.train.y, bought.y_true])      # buying labels: the true ones
    model = f.fit(x, y, seed)
    right = model.predict_proba(f.test.x).argmax(1) == f.test.y_true
    return float(right[f.failing].mean()), float(right.mean())


def _fingerprint(f: Family, seed: int) -> str:
    """What a baseline's outcome depends on: the training data (hence the model), the pool, the
    test rows' inputs and true labels, the failing slices and the seed. Two families with the
    same fingerprint (a variant that changes only the given test labels, ``noisy_test``) get the
    same baseline picks and scores, so they are computed once."""
    import hashlib

    h = hashlib.sha1(str(seed).encode())
    for a in (f.train.x, f.train.y, f.pool.x, f.pool.y_true, f.test.x, f.test.y_true, f.failing):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


_SAME_INPUTS: dict[tuple, tuple[np.ndarray, float, float, float]] = {}


def run_family(f: Family, seed: int, budgets: list[int], strategies: list[str],
               cache: dict | None = None) -> list[Outcome]:
    import torch

    torch.set_num_threads(1)
    model = f.trained or f.fit(f.train.x, f.train.y, seed)
    test_probs = model.predict_proba(f.test.x)
    pool_probs = model.predict_proba(f.pool.x)
    test_emb, pool_emb = model.embed(f.test.x), model.embed(f.pool.x)
    view = ModelView(model.embed(f.train.x), f.train.y, pool_emb, pool_probs, model.hidden(f.pool.x),
                     f.num_classes)
    right = test_probs.argmax(1) == f.test.y_true
    out = [Outcome(f.name, f.kind, seed, 0, "no additions", float(right[f.failing].mean()),
                   float(right.mean()), {}, 0.0)]
    if cache is not None:
        cache[(f.name, seed, 0, "no additions")] = out[0]
    regions, num_failures = diagnose(f, test_emb, test_probs) if "targeted" in strategies else ([], 0)
    data = PoolData(pool_emb, pool_probs, f.pool.meta)
    index = PoolIndex(pool_emb.shape[1]).build(pool_emb) if regions else None
    fingerprint = _fingerprint(f, seed)
    for budget in budgets:
        for strategy in strategies:
            key = (f.name, seed, budget, strategy)
            if cache is not None and strategy != "targeted" and key in cache:
                out.append(cache[key])
                continue
            same = _SAME_INPUTS.get((fingerprint, budget, strategy)) if strategy != "targeted" else None
            if same is not None:
                picks, failing, overall, seconds = same
                o = Outcome(f.name, f.kind, seed, budget, strategy, failing, overall,
                            {k: float(v[picks].mean()) for k, v in f.pool_tags.items()}, seconds)
                out.append(o)
                if cache is not None:
                    cache[key] = o
                continue
            t0 = time.perf_counter()
            if strategy == "targeted" and regions:
                picks = np.array([c.pool_index for c in suggest_candidates(
                    "targeted", budget, data, regions, labeled_embeddings=view.train_embeddings,
                    index=index, seed=seed, num_failures=num_failures)], dtype=np.int64)
            elif strategy == "targeted":   # what the server does without regions: its fallback
                picks = query("margin", view, budget, seed)
            elif strategy in ORACLES:
                picks = oracle_picks(strategy, f, view, budget, seed)
            else:
                picks = query(strategy, view, budget, seed)
            seconds = time.perf_counter() - t0
            failing, overall = _evaluate(f, picks, seed)
            if strategy != "targeted":
                _SAME_INPUTS[(fingerprint, budget, strategy)] = (picks, failing, overall, seconds)
            o = Outcome(f.name, f.kind, seed, budget, strategy, failing, overall,
                        {k: float(v[picks].mean()) for k, v in f.pool_tags.items()}, seconds)
            out.append(o)
            if cache is not None:
                cache[key] = o
    return out


def default_suite(split: str) -> list[str]:
    """The suite's families of a split that have failing slices to fix (not the null ones)."""
    try:
        from blindspots_scenarios import DEV, HELD_OUT
    except ImportError:
        return []
    return [f.name for f in (DEV if split == "dev" else HELD_OUT) if not f.is_null]


def families(split: str, draw: int, kinds: list[str], suite: list[str]) -> list[Family]:
    """The families of a split for its ``draw``-th seed: listings in the split's world and its
    variants, then the named suite families (``blindspots_scenarios``) of that split."""
    out: list[Family] = []
    listings = [k for k in kinds if k == "base" or k in VARIANTS]
    # The listings world has the split's own seeds; past them (more draws for the suite's
    # families, whose seeds are the suite's halves) only suite families run.
    if listings and draw < len(SPLITS[split]["seeds"]):
        seed = SPLITS[split]["seeds"][draw]
        base = listings_family(seed, world_seed=SPLITS[split]["world"])
        out += [base] if "base" in kinds else []
        out += [VARIANTS[k](base, seed=seed) for k in kinds if k in VARIANTS]
    if suite:
        from al_suite import suite_families

        out += suite_families(split, draw, suite)
    return out


# ------------------------------------------------------------------ report
def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and ``level`` t-interval of paired differences."""
    from scipy import stats

    m = float(d.mean())
    if len(d) < 2:
        return m, m, m
    h = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return m, m - h, m + h


def summary_rows(outcomes: list[Outcome], level: float = 0.95) -> list[dict]:
    """Per family and budget: means, the best baseline, and paired differences (``level`` intervals)."""
    rows = []
    fams = list(dict.fromkeys(o.family for o in outcomes))
    for fam in fams:
        of = [o for o in outcomes if o.family == fam]
        for budget in sorted({o.budget for o in of} - {0}):
            acc = {}
            for st in dict.fromkeys(o.strategy for o in of if o.budget == budget):
                acc[st] = {o.seed: o.failing_acc for o in of if o.budget == budget and o.strategy == st}
            base = {o.seed: o.failing_acc for o in of if o.budget == 0}
            if "targeted" not in acc:
                continue
            # Seeds every strategy ran (a partial run's caches may lack some).
            seeds = sorted(set(acc["targeted"]).intersection(*(set(v) for v in acc.values())))
            if not seeds:
                continue
            mean = {st: float(np.mean([v[s] for s in seeds])) for st, v in acc.items()}
            baselines = [b for b in BASELINES if b in mean]
            if not baselines:
                continue
            best = max(baselines, key=lambda b: mean[b])
            d = np.array([acc["targeted"][s] - acc[best][s] for s in seeds])
            dm = np.array([acc["targeted"][s] - acc["margin"][s] for s in seeds]) if "margin" in acc else d
            picks = {}
            for st in ("targeted", best):
                shares = [o.pick_shares for o in of if o.budget == budget and o.strategy == st and o.seed in seeds]
                picks[st] = {k: float(np.mean([s[k] for s in shares])) for k in shares[0]} if shares else {}
            rows.append({"family": fam, "kind": of[0].kind, "budget": budget, "seeds": seeds, "mean": mean,
                         "none": float(np.mean([base[s] for s in seeds if s in base] or [np.nan])),
                         "best": best,
                         "diff": t_interval(d, level), "wins": int((d > 0).sum()),
                         "vs_margin": t_interval(dm, level),
                         "oracles": {o: t_interval(np.array([acc[o][s] - acc[best][s] for s in seeds]), level)
                                     for o in ORACLES if o in acc},
                         "picks": picks})
    return rows


def verdict(row: dict) -> str:
    m, lo, _ = row["diff"]
    ok = m >= 0 and lo >= -0.01 and (row["kind"] not in MISLEADING or m >= 0.05)
    return "PASS" if ok else "FAIL"


def table(outcomes: list[Outcome], split: str, level: float = 0.95) -> str:
    rows = summary_rows(outcomes, level)
    ran = {o.strategy for o in outcomes}
    strategies = ["targeted", *BASELINES, *(o for o in ORACLES if o in ran)]
    seeds = sorted({o.seed for o in outcomes})
    lines = [f"Active-learning closed loop, {split} split, seeds {', '.join(map(str, seeds))}: failing-slice "
             f"accuracy in % (vs true labels) after retraining from scratch with the picks; baselines from "
             f"scikit-activeml {library_version()}. Δ = targeted − best baseline (highest mean of the six), "
             f"paired by seed: mean [{100 * level:g}% t-interval] in points, seeds where targeted is ahead.", "",
             "| family | budget | none | " + " | ".join(strategies) + " | best baseline | Δ vs best | ahead | "
             "Δ vs margin | target |",
             "|---|---:|---:|" + "---:|" * len(strategies) + "---|---:|---:|---:|---|"]
    for r in rows:
        m, lo, hi = (100 * v for v in r["diff"])
        mm, mlo, mhi = (100 * v for v in r["vs_margin"])
        cells = " | ".join(f"{100 * r['mean'][s]:.1f}" if s in r["mean"] else "–" for s in strategies)
        lines.append(f"| {r['family']} | {r['budget']} | {100 * r['none']:.1f} | {cells} | {r['best']} | "
                     f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}] | {r['wins']}/{len(r['seeds'])} | "
                     f"{mm:+.1f} [{mlo:+.1f}, {mhi:+.1f}] | {verdict(r)} |")
    if any(r["oracles"] for r in rows):
        lines += ["", "References that read the pool's true condition tags (an upper reference, not a strategy): "
                  "Δ = reference − best baseline, paired by seed, mean [interval] in points.", ""]
        for r in rows:
            parts = [f"{o} {100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                     for o, (m, lo, hi) in r["oracles"].items()]
            lines.append(f"- {r['family']} @ {r['budget']}: " + "; ".join(parts))
    lines += ["", "Target (issue 12): Δ mean ≥ 0 with lower bound ≥ −1 point everywhere; Δ mean ≥ +5 points on "
              "the families where uncertainty misleads (ambiguous pool, confident errors).", "",
              "Share of picks per pool tag (targeted / best baseline):", ""]
    for r in rows:
        t, b = r["picks"]["targeted"], r["picks"][r["best"]]
        parts = [f"{k} {100 * t[k]:.0f}% / {100 * b.get(k, float('nan')):.0f}%" for k in t]
        lines.append(f"- {r['family']} @ {r['budget']}: " + "; ".join(parts))
    secs = {}
    for o in outcomes:
        if o.budget:
            secs.setdefault(o.strategy, []).append(o.seconds)
    lines += ["", "Mean selection time per call (s): " + ", ".join(
        f"{k} {np.mean(v):.2f}" for k, v in secs.items()) + ".", ""]
    return "\n".join(lines)


def _write(outcomes: list[Outcome], args, text: str) -> None:
    """The split's fragment, unless told not to or there is no targeted row to put in it (a
    baselines-only run fills caches; its table would be empty)."""
    if not args.no_write and any(o.strategy == "targeted" for o in outcomes):
        write_fragment(f"active_learning_{args.split}", text)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(SPLITS), default="heldout")
    parser.add_argument("--quick", action="store_true", help="2 seeds, budget 300, base family only")
    parser.add_argument("--draws", type=int, default=None, help="seeds per family (default: the split's)")
    parser.add_argument("--first-draw", type=int, default=0, help="skip the split's first seeds (parallel runs)")
    parser.add_argument("--suite", nargs="*", default=None,
                        help="suite families to add (default: every one of the split with failing slices)")
    parser.add_argument("--budgets", type=int, nargs="+", default=None)
    parser.add_argument("--kinds", nargs="+", default=["base", *VARIANTS])
    parser.add_argument("--strategies", nargs="+", default=["targeted", *BASELINES])
    parser.add_argument("--cache", default=None,
                        help="pickle of baseline outcomes reused across runs (dev iterations)")
    parser.add_argument("--report", nargs="+", default=None,
                        help="write the table from these caches (no new runs)")
    parser.add_argument("--level", type=float, default=0.95,
                        help="confidence level of the paired intervals (a second look at a family takes a "
                             "stricter one: bench/RESULTS.md#active-learning)")
    parser.add_argument("--no-write", action="store_true",
                        help="print only, keeping bench/results/ as it is (e.g. a report over some families)")
    args = parser.parse_args(argv)
    if args.report:
        outcomes = [o for path in args.report for o in pickle.loads(Path(path).read_bytes()).values()]
        text = table(outcomes, args.split, args.level)
        _write(outcomes, args, text)
        print(text)
        return text
    draws = args.draws or (2 if args.quick else SPLITS[args.split]["draws"])
    suite = ([] if args.quick else default_suite(args.split)) if args.suite is None else args.suite
    budgets = args.budgets or ([300] if args.quick else [300, 600])
    kinds = ["base"] if args.quick else args.kinds
    cache = None
    if args.cache:
        path = Path(args.cache)
        cache = pickle.loads(path.read_bytes()) if path.exists() else {}
    outcomes: list[Outcome] = []
    for draw in range(args.first_draw, draws):
        for f in families(args.split, draw, kinds, suite):
            seed = f.seed
            t0 = time.perf_counter()
            outcomes += run_family(f, seed, budgets, args.strategies, cache)
            print(f"seed {seed} {f.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            if cache is not None:
                Path(args.cache).write_bytes(pickle.dumps(cache))
    text = table(outcomes, args.split, args.level)
    _write(outcomes, args, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
