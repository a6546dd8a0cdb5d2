"""Through a real server: the confusions no region holds reach the targeted strategy (the Suggest
handler reads the run's labels and probabilities), and their picks say so (region_id -1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from blindspots.report import write_report
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


def test_the_diagnosis_lists_the_confusions_no_region_holds(client, tmp_path):
    w = confusion_world(1)
    run = client.create_run("pairs-report", class_names=[f"c{c}" for c in range(K)], embedding_dim=DIM)
    run.log_predictions(list(w["ids"]), w["x"], labels=w["labels"], probabilities=w["probs"])
    diagnosis = run.diagnose(progress=False)
    (c,) = diagnosis.message.unheld_confusions
    assert (c.true_label, c.predicted_label, c.true_name, c.predicted_name) == (4, 9, "c4", "c9")
    assert c.failures == len(w["pair_failures"]) and 0 < c.excess_errors <= c.failures
    # Never one of the rows a region holds.
    regions = diagnosis.message.regions
    assert regions and all(r.confusions[0].true_label != 4 or r.confusions[0].predicted_label != 9 for r in regions)
    frame = diagnosis.unheld_confusions_frame()
    assert frame[["given", "predicted", "failures"]].values.tolist() == [["c4", "c9", c.failures]]
    assert "c4 -> c9" in diagnosis.summary()
    html = write_report(client, run.id, tmp_path / "report.html").read_text()
    assert "Confusions outside every region" in html and "c4 → c9" in html
