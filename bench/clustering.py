"""Failure clustering benchmark: our FailureClusterer vs HDBSCAN on the raw embeddings.

The listings scenario's test split (128-d) at each size; failures are the
scenario model's mispredictions; the planted ground truth of a failure is the
planted condition it lies in (north_cam_e, luxury, dark, watermark; "none"
otherwise). Peers: the ``hdbscan`` package and scikit-learn's ``HDBSCAN`` on the
failures' raw embeddings, with the min_cluster_size / min_samples our clusterer
chose; each runs in a child process bounded by a timeout.

Ours does more than the peers: it also assigns every test row (not only
failures) to a region, and that is inside its time.

    .venv/bin/python bench/clustering.py --quick     # 10k, 30k rows
    .venv/bin/python bench/clustering.py             # 10k, 30k, 100k rows

Writes bench/results/clustering.md and prints it.
"""
from __future__ import annotations

import argparse
import gc
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import adjusted_rand_score

from measure import ROOT, Timing, ratio, repeat, repeat_bounded, write_fragment

sys.path.insert(0, str(ROOT / "service"))

from blindspots_server.core.failure_clusters import FailureClusterer  # noqa: E402
from blindspots_scenarios.listings import make_scenario, train_model  # noqa: E402

CONDITIONS = ("north_cam_e", "luxury", "dark", "watermark")


@dataclass
class PeerOutcome:
    name: str
    timing: Timing
    clusters: int
    noise: float          # share of failures labelled noise
    ari_truth: float
    ari_ours: float


@dataclass
class Outcome:
    rows: int
    failures: int
    params: dict
    ours: Timing
    ours_clusters: int
    ours_noise: float
    ours_ari_truth: float
    peers: list[PeerOutcome]


def _hdbscan(points: np.ndarray, mcs: int, ms: int) -> np.ndarray:
    import hdbscan
    return hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit_predict(points)


def _sklearn_hdbscan(points: np.ndarray, mcs: int, ms: int) -> np.ndarray:
    from sklearn.cluster import HDBSCAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit_predict(points)


PEERS = {"hdbscan": _hdbscan, "sklearn HDBSCAN": _sklearn_hdbscan}


def measure(rows: int, model, reps: int, limit_s: float) -> Outcome:
    split = make_scenario(n_train=10, n_test=rows, n_pool=10, seed=2).test
    failed = model.predict_proba(split.embeddings).argmax(1) != split.labels
    fail_rows = np.flatnonzero(failed)
    cond = split.conditions[list(CONDITIONS)].to_numpy()[fail_rows]
    truth = np.where(cond.any(axis=1), cond.argmax(axis=1), -1)

    def ours_fit():
        clusterer = FailureClusterer(seed=0)
        result = clusterer.fit(split.embeddings, failed, split.labels)
        return result.cluster_of_failure, clusterer.params_

    ours = repeat(ours_fit, reps)
    labels, params = ours.value
    points = np.ascontiguousarray(split.embeddings[fail_rows])
    peers = []
    for name, fn in PEERS.items():
        t = repeat_bounded(fn, (points, params["min_cluster_size"], params["min_samples"]), reps, limit_s)
        if not t.finished:
            peers.append(PeerOutcome(name, t, 0, float("nan"), float("nan"), float("nan")))
            continue
        peer = np.asarray(t.value)
        peers.append(PeerOutcome(name, t, int(peer.max()) + 1, float((peer < 0).mean()),
                                 adjusted_rand_score(truth, peer), adjusted_rand_score(labels, peer)))
    out = Outcome(rows, len(fail_rows), params, ours, int(labels.max()) + 1, float((labels < 0).mean()),
                  adjusted_rand_score(truth, labels), peers)
    del split, points
    gc.collect()
    return out


def table(results: list[Outcome]) -> str:
    lines = ["Failure clustering on the scenario's test split (128-d): our `FailureClusterer` (class "
             "directions removed, PCA, spectral kNN embedding, HDBSCAN on <= 10k sampled failures, "
             "every row assigned) vs HDBSCAN on the failures' raw embeddings with the same "
             "min_cluster_size / min_samples. ARI vs truth: against the planted condition of each "
             "failure (4 conditions + none); ARI vs ours: agreement of the peer's labels with ours. "
             "Seconds are medians; speed-up = peer s / our s.", "",
             "| rows | failures | mcs/ms | method | reps | seconds | speed-up | clusters | noise "
             "| ARI vs truth | ARI vs ours |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p = f"{r.params['min_cluster_size']}/{r.params['min_samples']}"
        lines.append(f"| {r.rows:,} | {r.failures:,} | {p} | **ours** | {r.ours.runs} | {r.ours.cell()} | – | "
                     f"{r.ours_clusters} | {r.ours_noise:.0%} | {r.ours_ari_truth:.3f} | – |")
        for peer in r.peers:
            if not peer.timing.finished:
                lines.append(f"| | | | {peer.name} | – | {peer.timing.cell()} | {ratio(r.ours, peer.timing)} "
                             "| – | – | – | – |")
                continue
            lines.append(f"| | | | {peer.name} | {peer.timing.runs} | {peer.timing.cell()} | "
                         f"{ratio(r.ours, peer.timing)} | {peer.clusters} | {peer.noise:.0%} | "
                         f"{peer.ari_truth:.3f} | {peer.ari_ours:.3f} |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 30k rows")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer-timeout", type=float, default=300.0, help="seconds per peer run")
    args = parser.parse_args(argv)
    sizes = [10_000, 30_000] if args.quick else [10_000, 30_000, 100_000]
    s = make_scenario(n_train=8000, n_test=10, n_pool=10, seed=0)
    model = train_model(s.train, seed=0)
    results = []
    for rows in sizes:
        results.append(measure(rows, model, args.reps, args.peer_timeout))
        print(f"clustering: {rows} rows done", file=sys.stderr)
    text = table(results)
    write_fragment("clustering", text)
    print(text)
    return text


if __name__ == "__main__":
    main()
