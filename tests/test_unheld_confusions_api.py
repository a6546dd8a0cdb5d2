"""Through a real server: the confusions no region holds reach the targeted strategy (the Suggest
handler reads the run's labels and probabilities), and their picks say so (region_id -1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

K, DIM = 10, 32


def test_targeted_picks_near_a_confusion_no_region_holds(client):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(K, DIM)) * 3.0
    n = 3000
    true = rng.integers(0, K, n)
    x = centres[true] + rng.normal(size=(n, DIM))
    labels, predicted = true.copy(), true.copy()
    wrong = rng.random(n) < 0.03                          # ordinary errors, any wrong class
    predicted[wrong] = (true[wrong] + rng.integers(1, K, wrong.sum())) % K
    spot = rng.normal(size=DIM) * 3.0
    x[:80] = spot + 0.3 * rng.normal(size=(80, DIM))      # a region: dense failures of their own
    predicted[:80] = (labels[:80] + 1) % K
    pair = np.arange(100, 160)                            # 4s read as 9s, among the other 4s
    labels[pair] = true[pair] = 4
    x[pair] = centres[4] + rng.normal(size=(60, DIM))
    predicted[pair] = 9
    probs = np.full((n, K), 0.05 / (K - 1))
    probs[np.arange(n), predicted] = 0.95
    ids = [f"t{i}" for i in range(n)]
    run = client.create_run("pairs", class_names=[str(c) for c in range(K)], embedding_dim=DIM)
    run.log_predictions(ids, x.astype(np.float32), labels=labels, probabilities=probs,
                        metadata=pd.DataFrame({"site": rng.choice(["a", "b", "c"], n)}))
    diagnosis = run.diagnose(progress=False)
    assert diagnosis.message.regions
    pool_true = rng.integers(0, K, 3000)
    pool_x = centres[pool_true] + rng.normal(size=(3000, DIM))
    pool_x[:150] = spot + 0.3 * rng.normal(size=(150, DIM))
    pool = client.create_pool("pairs-pool", embedding_dim=DIM, num_classes=K)
    pool.add([f"p{i}" for i in range(3000)], pool_x.astype(np.float32),
             probabilities=np.full((3000, K), 1.0 / K), progress=False)
    picks = run.suggest(pool, budget=120, progress=False)
    confusion = picks[picks["reason"].str.contains("labelled 4 and predicted 9 that no region holds")]
    assert len(confusion) >= 10 and (confusion["region_id"] == -1).all()
    assert set(confusion["nearest_failure_id"]) <= {ids[i] for i in pair} | {
        ids[i] for i in np.flatnonzero(wrong & (labels == 4) & (predicted == 9))}
    assert (picks["region_id"] >= 0).any()                # next to the region, not instead of it
