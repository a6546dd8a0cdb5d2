"""The demo pipeline: a server on a temporary embedded store, the synthetic
listings scenario pushed through the SDK, a diagnosis, suggestions, and a
retrain that shows whether the suggestions fixed the failures."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from blindspots import Client
from blindspots.report import write_report

from blindspots_server.config import ServerConfig
from .listings import Scenario, make_scenario, train_model
from .listings_images import attach_images
from blindspots_server.server.app import BlindspotsServer


def _failing_slice_accuracy(s: Scenario, probs: np.ndarray) -> float:
    mask = s.test.in_data_gap
    return float((probs.argmax(1)[mask] == s.test.true_labels[mask]).mean())


def _region_recovery(s: Scenario, region_of_sample: np.ndarray) -> dict[str, float]:
    """Best F1 of any diagnosed region against each planted condition."""
    out = {}
    for name in s.test.conditions.columns:
        truth = s.test.conditions[name].to_numpy()
        best = 0.0
        for r in np.unique(region_of_sample[region_of_sample >= 0]):
            pred = region_of_sample == r
            tp = float((pred & truth).sum())
            if tp:
                best = max(best, 2 * tp / (pred.sum() + truth.sum()))
        out[name] = best
    return out


def run_demo(output_dir: str = "demo-output", seed: int = 0, quick: bool = False, budget: int = 600,
             images: bool = False) -> dict:
    """Run the whole loop; print a report; return the headline numbers."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = dict(n_train=4000, n_test=5000, n_pool=15000) if quick else dict(n_train=8000, n_test=10000,
                                                                              n_pool=40000)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="blindspots-demo-") as data_dir:
        server = BlindspotsServer(ServerConfig(data_dir=data_dir, port=0)).start()
        try:
            client = Client(f"127.0.0.1:{server.port}")
            print(f"== blindspots demo: server on 127.0.0.1:{server.port}, store in {data_dir}")
            s = make_scenario(seed=seed, **sizes)
            if images:   # small PNGs per test/pool row: thumbnails in the report
                attach_images(s, out / "images")
            print(f"== scenario: {len(s.train)} train / {len(s.test)} test / {len(s.pool)} unlabeled pool rows, "
                  f"{len(s.class_names)} classes; planted: "
                  + ", ".join(f"{c.name} ({c.kind}{', ' + c.slice if c.slice else ', hidden'})" for c in s.planted))
            model = train_model(s.train, seed=seed)
            probs = model.predict_proba(s.test.embeddings)
            before = _failing_slice_accuracy(s, probs)

            run = client.create_run("listings-eval", class_names=s.class_names,
                                    embedding_dim=s.test.embeddings.shape[1], model_name="listings-mlp",
                                    model_version="v1", dataset_name="listings-test")
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=probs,
                                metadata=s.test.metadata,
                                uris=s.test.uris)
            pool = client.create_pool("listings-unlabeled", embedding_dim=s.pool.embeddings.shape[1],
                                      num_classes=len(s.class_names))
            pool.add(s.pool.ids, s.pool.embeddings, probabilities=model.predict_proba(s.pool.embeddings),
                     metadata=s.pool.metadata, uris=s.pool.uris)
            print(f"== ingested {len(s.test)} predictions into {run.id} and {len(s.pool)} rows into {pool.id}")

            diagnosis = run.diagnose()
            print("== diagnosis")
            print(diagnosis.summary())
            region_of_sample = np.asarray(server.store.diagnosis_rows(diagnosis.id).column("region").to_numpy())
            recovery = _region_recovery(s, region_of_sample)
            print("== planted conditions vs regions found (best F1): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in recovery.items()))

            manifest = out / "suggestions.parquet"
            picks = run.suggest(pool, budget=budget, output=str(manifest))
            print(f"== {len(picks)} suggestions written to {manifest}; top 5:")
            for row in picks.head(5).itertuples():
                print(f"  #{row.rank} {row.sample_id} score {row.score:.3f}: {row.reason}")
            report = write_report(client, run.id, out / "report.html", suggestions=picks)
            print(f"== report: {report}")

            # Close the loop: label the picks (the scenario knows their true labels) and retrain.
            results = {"before": before}
            for strategy, frame in (("targeted", picks),
                                    ("random", run.suggest(pool, budget=budget, strategy="random",
                                                           allow_repeats=True, seed=seed))):
                idx = np.flatnonzero(np.isin(s.pool.ids, frame["sample_id"].to_numpy()))
                added = s.pool.subset(idx)
                added.labels = added.true_labels
                retrained = train_model(s.train.concat(added), seed=seed)
                results[strategy] = _failing_slice_accuracy(s, retrained.predict_proba(s.test.embeddings))
            print(f"== accuracy on the planted failing slices: {results['before']:.1%} before; after adding "
                  f"{budget} labeled pool rows and retraining: targeted {results['targeted']:.1%}, "
                  f"random {results['random']:.1%}")
            print(f"== done in {time.time() - t0:.0f}s; manifest: {manifest}")
            client.close()
            return {"recovery": recovery, "accuracy": results, "manifest": str(manifest), "report": str(report),
                    "regions": len(diagnosis.regions)}
        finally:
            server.stop()
