"""End-to-end benchmark: ingest, diagnose and suggest through the server as the test set grows.

For each size n: the listings scenario with n test rows and a pool of
min(2n, 1M) rows, the scenario model's predictions, a fresh
``python -m blindspots_server`` subprocess on loopback; through the SDK: ingest
test and pool, diagnose (median of repetitions), suggest 1000 with
``targeted`` (first call, which may wait for the pool's index build, and the
median of warm calls). The server's peak RSS is its VmHWM. Peer: the same
diagnosis and suggestion by the core in this process (no gRPC, no store), so
the ratio is what the service costs on top of the analysis.

Cost growth is the least-squares slope of log(seconds) on log(n); a slope of
1 is linear. The plot goes to bench/results/scaling.png when matplotlib is
installed.

    .venv/bin/python bench/end_to_end.py --quick     # 10k, 100k test rows
    .venv/bin/python bench/end_to_end.py             # 10k, 100k, 1M test rows

Writes bench/results/end_to_end.md and prints it.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from measure import RESULTS, ROOT, ServerProcess, Timing, repeat, write_fragment

sys.path.insert(0, str(ROOT / "service"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from blindspots_server.core.pool_index import PoolIndex  # noqa: E402
from blindspots_server.core.suggest import PoolData, suggest_candidates  # noqa: E402
from blindspots_scenarios.listings import CLASS_NAMES, make_scenario, train_model  # noqa: E402

BUDGET = 1000
POOL_CAP = 1_000_000


@dataclass
class Outcome:
    rows: int
    pool_rows: int
    ingest_test_s: float
    ingest_pool_s: float
    diagnose: Timing
    suggest_first_s: float
    suggest_warm: Timing
    regions: int
    picks: int
    server_peak_rss_mb: float
    core_diagnose: Timing | None
    core_suggest: Timing | None


def core_peer(s, test_probs, pool_probs, reps: int) -> tuple[Timing, Timing]:
    """The core alone: Diagnoser on the arrays, then PoolIndex build + targeted suggestion."""
    from closed_loop import diagnose   # the suggestion engineer's region conversion

    diag = repeat(lambda: diagnose(s.test.embeddings, s.test.labels, test_probs, s.test.metadata,
                                   s.test.ids)[0], reps, budget_s=120)
    regions = diag.value
    pool = PoolData(s.pool.embeddings, pool_probs, s.pool.metadata)

    def suggest():
        index = PoolIndex(s.pool.embeddings.shape[1]).build(s.pool.embeddings)
        return suggest_candidates("targeted", BUDGET, pool, regions, index=index, seed=0)
    return diag, repeat(suggest, reps, budget_s=60)


def measure(rows: int, model, reps: int, with_peer: bool) -> Outcome:
    pool_rows = min(2 * rows, POOL_CAP)
    s = make_scenario(n_train=10, n_test=rows, n_pool=pool_rows, seed=4)
    test_probs = model.predict_proba(s.test.embeddings)
    pool_probs = model.predict_proba(s.pool.embeddings)
    with tempfile.TemporaryDirectory(prefix="blindspots-bench-") as tmp:
        with ServerProcess(os.path.join(tmp, "data")) as server:
            client = server.client
            run = client.create_run("e2e", class_names=CLASS_NAMES, embedding_dim=s.test.embeddings.shape[1])
            pool = client.create_pool("e2e-pool", embedding_dim=s.pool.embeddings.shape[1],
                                      num_classes=len(CLASS_NAMES))
            t0 = time.perf_counter()
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=test_probs,
                                metadata=s.test.metadata, uris=s.test.uris, progress=False)
            ingest_test_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.add(s.pool.ids, s.pool.embeddings, probabilities=pool_probs, metadata=s.pool.metadata,
                     uris=s.pool.uris, progress=False)
            ingest_pool_s = time.perf_counter() - t0
            diagnose = repeat(lambda: run.diagnose(progress=False), reps, budget_s=120)
            regions = len(diagnose.value.to_frame())
            t0 = time.perf_counter()
            picks = run.suggest(pool, BUDGET, progress=False)
            suggest_first_s = time.perf_counter() - t0
            # Earlier picks are excluded from later sets: every warm call still ranks the whole pool.
            warm = repeat(lambda: run.suggest(pool, BUDGET, progress=False), reps, budget_s=60)
            rss = server.peak_rss_mb()
    core_diag = core_sugg = None
    if with_peer:
        core_diag, core_sugg = core_peer(s, test_probs, pool_probs, reps)
    del s, test_probs, pool_probs
    gc.collect()
    return Outcome(rows, pool_rows, ingest_test_s, ingest_pool_s, diagnose, suggest_first_s, warm,
                   regions, len(picks), rss, core_diag, core_sugg)


def slope(x: list[float], y: list[float]) -> float:
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def plot(results: list[Outcome]) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(matplotlib not installed: no plot)"
    n = [r.rows for r in results]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for label, ys in (("ingest test", [r.ingest_test_s for r in results]),
                      ("ingest pool", [r.ingest_pool_s for r in results]),
                      ("diagnose", [r.diagnose.median_s for r in results]),
                      ("suggest (first)", [r.suggest_first_s for r in results]),
                      ("suggest (warm)", [r.suggest_warm.median_s for r in results])):
        ax.loglog(n, ys, "o-", label=f"{label} (slope {slope(n, ys):.2f})")
    ax.loglog(n, [results[0].diagnose.median_s * x / n[0] for x in n], "k:", label="linear")
    ax.set_xlabel("test rows (pool = min(2x, 1M))")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=7)
    ax.set_title("end to end through the server")
    ax2.loglog(n, [r.server_peak_rss_mb for r in results], "o-")
    ax2.set_xlabel("test rows")
    ax2.set_ylabel("server peak RSS (MiB)")
    ax2.set_title(f"memory (slope {slope(n, [r.server_peak_rss_mb for r in results]):.2f})")
    fig.tight_layout()
    path = RESULTS / "scaling.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"Plot: `bench/results/{path.name}`."


def table(results: list[Outcome], plot_note: str) -> str:
    lines = [f"End to end through a server subprocess (SDK on loopback), pool = min(2 x test, 1M), "
             f"suggest budget {BUDGET} (`targeted`). Diagnose and warm suggest: medians of the repetitions "
             "shown. Core peer: the same `Diagnoser` / `PoolIndex` + targeted suggestion in-process; "
             "overhead = server s / core s.", "",
             "| test rows | pool rows | ingest test s | ingest pool s | diagnose s (reps) | core diagnose s "
             "| overhead | suggest first s | suggest warm s | core suggest s | regions | server peak RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        cd = r.core_diagnose.cell() if r.core_diagnose else "not run"
        over = f"{r.diagnose.median_s / r.core_diagnose.median_s:.2f}x" if r.core_diagnose else "–"
        cs = r.core_suggest.cell() if r.core_suggest else "not run"
        lines.append(f"| {r.rows:,} | {r.pool_rows:,} | {r.ingest_test_s:.1f} | {r.ingest_pool_s:.1f} | "
                     f"{r.diagnose.cell()} ({r.diagnose.runs}) | {cd} | {over} | {r.suggest_first_s:.2f} | "
                     f"{r.suggest_warm.cell()} | {cs} | {r.regions} | {r.server_peak_rss_mb:,.0f} |")
    n = [r.rows for r in results]
    slopes = {"ingest test": [r.ingest_test_s for r in results],
              "ingest pool": [r.ingest_pool_s for r in results],
              "diagnose": [r.diagnose.median_s for r in results],
              "suggest (warm)": [r.suggest_warm.median_s for r in results],
              "server peak RSS": [r.server_peak_rss_mb for r in results]}
    growth = ", ".join(f"{k} {slope(n, v):.2f}" for k, v in slopes.items())
    lines += ["", f"Growth (log-log slope vs test rows; 1 = linear): {growth}. {plot_note}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k test rows")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer-max-rows", type=int, default=10_000,
                        help="run the in-process core peer up to this many test rows")
    args = parser.parse_args(argv)
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    s = make_scenario(n_train=8000, n_test=10, n_pool=10, seed=0)
    model = train_model(s.train, seed=0)
    results = []
    for rows in sizes:
        results.append(measure(rows, model, args.reps, rows <= args.peer_max_rows))
        print(f"end to end: {rows} rows done", file=sys.stderr)
        # Written after every size: if the harness's timeout stops a larger size,
        # the sizes already measured still reach RESULTS.md.
        text = table(results, plot(results))
        write_fragment("end_to_end", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
