"""Through a real server: the confusions no region holds reach the targeted strategy (the Suggest
handler reads the run's labels and probabilities), and their picks say so (region_id -1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from confusion_world import DIM, K, confusion_world


def test_targeted_picks_near_a_confusion_no_region_holds(client):
    w = confusion_world(0)
    run = client.create_run("pairs", class_names=[str(c) for c in range(K)], embedding_dim=DIM)
    run.log_predictions(list(w["ids"]), w["x"], labels=w["labels"], probabilities=w["probs"],
                        metadata=pd.DataFrame({"site": w["rng"].choice(["a", "b", "c"], len(w["ids"]))}))
    diagnosis = run.diagnose(progress=False)
    assert diagnosis.message.regions
    pool = client.create_pool("pairs-pool", embedding_dim=DIM, num_classes=K)
    pool.add([f"p{i}" for i in range(len(w["pool"]))], w["pool"],
             probabilities=np.full((len(w["pool"]), K), 1.0 / K), progress=False)
    picks = run.suggest(pool, budget=120, progress=False)
    confusion = picks[picks["reason"].str.contains("labelled 4 and predicted 9 that no region holds")]
    assert len(confusion) >= 10 and (confusion["region_id"] == -1).all()
    assert set(confusion["nearest_failure_id"]) <= set(w["ids"][w["pair_failures"]])
    assert (picks["region_id"] >= 0).any()                # next to the region, not instead of it
