"""What comparing with the previous version adds to a diagnosis, in the same run.

Logs a test set of N rows (32-d, 5 classes, 3 metadata columns, one planted failing slice)
three times through a real server: v1 and v2 of model "m" (v2 fails on a few more rows), and
v2's predictions again as the first version of another model, which has nothing to compare
with. v2's diagnosis compares itself with v1's; the other's does not. Also times CompareRuns of
v1 and v2 on its own.

    .venv/bin/python bench/version_compare.py --rows 1000000

Prints each diagnosis's seconds and the ratio of the compared one to the uncompared one.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from measure import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from blindspots import Client  # noqa: E402
from conftest import start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    n, dim, k = args.rows, 32, 5
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n)
    embeddings = (rng.normal(size=(k, dim))[labels] * 3 + rng.normal(size=(n, dim))).astype(np.float32)
    metadata = pd.DataFrame({"region": rng.choice(list("abcde"), n), "camera": rng.choice(list("vwxyz"), n),
                             "price": rng.normal(size=n)})
    planted = (metadata.region.eq("a") & metadata.camera.eq("x")).to_numpy()
    ids = [f"s{i}" for i in range(n)]

    def predictions(noise: float) -> np.ndarray:
        p = np.full((n, k), 0.02)
        p[np.arange(n), labels] = 0.92
        wrong = planted | (rng.random(n) < noise)
        p[wrong] = np.roll(p[wrong], 1, axis=1)
        return p

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(f"{tmp}/data")
        client = Client(f"127.0.0.1:{server.port}", timeout=3600)
        seconds, runs = {}, {}
        v2 = predictions(0.06)
        for name, model, version, probs in (("v1", "m", "v1", predictions(0.05)), ("v2", "m", "v2", v2),
                                            ("v2, another model", "m2", "v1", v2)):
            run = client.create_run(name, class_names=[str(c) for c in range(k)], embedding_dim=dim,
                                    model_name=model, model_version=version)
            run.log_predictions(ids, embeddings, labels=labels, probabilities=probs, metadata=metadata,
                                progress=False)
            start = time.perf_counter()
            diagnosis = run.diagnose(progress=False)
            seconds[name] = time.perf_counter() - start
            runs[name] = (run, diagnosis)
        assert runs["v2"][1].previous_version is not None and runs["v2, another model"][1].previous_version is None
        start = time.perf_counter()
        compared = client.compare(runs["v1"][0], runs["v2"][0])
        compare_s = time.perf_counter() - start
        client.close()
        server.stop()
    print(f"rows {n:,}: diagnose v2 (compared with v1) {seconds['v2']:.1f} s, the same rows as another model's "
          f"first version {seconds['v2, another model']:.1f} s, ratio "
          f"{seconds['v2'] / seconds['v2, another model']:.2f}x; CompareRuns v1 -> v2 alone {compare_s:.2f} s "
          f"({len(compared.regressions())} findings worse)")


if __name__ == "__main__":
    main()
