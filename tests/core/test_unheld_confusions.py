"""Confusions no region holds: found among the failures outside every region, typed by the
neighbour rule, and collected for by the targeted strategy next to the regions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blindspots_server.core import targeted_budget
from blindspots_server.core.suggest import PoolData, suggest_candidates
from blindspots_server.core.suggest_inputs import TargetRegion, confusion_targets
from blindspots_server.core.unheld_confusions import unheld_confusions

K, DIM = 10, 32


def _world(seed: int, flipped: bool):
    """A test set of K classes with scattered ordinary errors, one region (a dense group of
    failures at a spot of its own) and 60 failures labelled 4 and predicted 9 that no region
    holds: a data gap (4s drawn towards 9s, lying together) or, ``flipped``, 9s labelled 4."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, DIM)) * 3.0
    n = 3000
    true = rng.integers(0, K, n)
    x = centres[true] + rng.normal(size=(n, DIM))
    labels, predicted = true.copy(), true.copy()
    wrong = rng.random(n) < 0.03                          # ordinary errors, any wrong class
    predicted[wrong] = (true[wrong] + rng.integers(1, K, wrong.sum())) % K
    region = np.full(n, -1)
    spot = rng.normal(size=DIM) * 3.0
    r_rows = np.arange(80)
    x[r_rows] = spot + 0.3 * rng.normal(size=(80, DIM))
    predicted[r_rows] = (labels[r_rows] + 1) % K
    region[r_rows] = 0
    p_rows = np.arange(100, 160)
    if flipped:
        true[p_rows] = labels[p_rows] = 9
        x[p_rows] = centres[9] + rng.normal(size=(60, DIM))
        labels[p_rows] = 4
    else:
        true[p_rows] = labels[p_rows] = 4
        x[p_rows] = 0.4 * centres[4] + 0.6 * centres[9] + 0.5 * rng.normal(size=(60, DIM))
    predicted[p_rows] = 9
    probs = np.full((n, K), 0.05 / (K - 1))
    probs[np.arange(n), predicted] = 0.95
    failed = labels != predicted
    pool_true = rng.integers(0, K, 4000)
    pool = centres[pool_true] + rng.normal(size=(4000, DIM))
    pool[:150] = spot + 0.3 * rng.normal(size=(150, DIM))                     # like the region
    pool[150:300] = (x[p_rows].mean(0) + (0.5 if not flipped else 1.0) * rng.normal(size=(150, DIM)))
    pool_probs = np.full((4000, K), 0.1)
    return dict(x=x.astype(np.float32), labels=labels, probs=probs, failed=failed, region=region,
                pair_rows=p_rows, pool=pool.astype(np.float32), pool_probs=pool_probs)


def test_only_the_planted_pair_is_a_target():
    w = _world(0, flipped=False)
    found = unheld_confusions(w["labels"], w["probs"].argmax(1), w["failed"], w["region"], K)
    assert [(c.given, c.predicted) for c in found] == [(4, 9)]
    # The planted failures, and the odd ordinary error that happens to be a 4 read as a 9.
    assert set(w["pair_rows"]) <= set(found[0].rows) and len(found[0].rows) <= 65
    assert 0 < found[0].excess_errors <= 60
    # Held by a region, the same failures are no target.
    held = w["region"].copy()
    held[w["pair_rows"]] = 1
    assert unheld_confusions(w["labels"], w["probs"].argmax(1), w["failed"], held, K) == []


def test_a_top_loss_failure_the_model_got_right_confuses_nothing():
    w = _world(0, flipped=False)
    failed = w["failed"].copy()
    right = np.flatnonzero(~failed & (w["region"] < 0) & (w["labels"] == 3))[:200]
    failed[right] = True                                  # top-loss failures, correctly predicted
    found = unheld_confusions(w["labels"], w["probs"].argmax(1), failed, w["region"], K)
    assert [(c.given, c.predicted) for c in found] == [(4, 9)]


def _picks_near_pair(w, mode: str, monkeypatch) -> int:
    monkeypatch.setattr(targeted_budget, "UNHELD_CONFUSIONS", mode)
    ids = np.array([f"t{i}" for i in range(len(w["labels"]))])
    rows = np.flatnonzero(w["region"] == 0)
    regions = [TargetRegion(region_id=0, excess_errors=70.0, failure_embeddings=w["x"][rows],
                            failure_indices=rows, failure_ids=ids[rows])]
    regions += confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], ids)
    pool = PoolData(w["pool"], w["pool_probs"], pd.DataFrame(index=range(len(w["pool"]))))
    picks = suggest_candidates("targeted", 120, pool, regions, num_failures=int(w["failed"].sum()))
    near = [c for c in picks if 150 <= c.pool_index < 300]
    assert all(c.region_id == -1 and "labelled 4 and predicted 9 that no region holds" in c.reason
               for c in near)
    return len(near)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_data_gap_confusion_gets_picks_next_to_the_region(seed, monkeypatch):
    w = _world(seed, flipped=False)
    ids = np.array([f"t{i}" for i in range(len(w["labels"]))])
    (target,) = confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], ids)
    assert target.kind != "label_noise" and target.confusion == (4, 9) and target.region_id == -1
    assert _picks_near_pair(w, "gaps", monkeypatch) >= 30
    assert _picks_near_pair(w, "off", monkeypatch) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_confusion_of_wrong_labels_is_typed_label_noise_and_not_collected(seed, monkeypatch):
    w = _world(seed, flipped=True)
    ids = np.array([f"t{i}" for i in range(len(w["labels"]))])
    (target,) = confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], ids)
    assert target.kind == "label_noise"
    assert _picks_near_pair(w, "gaps", monkeypatch) == 0
    assert _picks_near_pair(w, "all", monkeypatch) > 0


def test_confusions_alone_do_not_replace_a_diagnosis(monkeypatch):
    """With no region, the budget goes to margin sampling as before, whatever confusions exist."""
    w = _world(0, flipped=False)
    ids = np.array([f"t{i}" for i in range(len(w["labels"]))])
    targets = confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], ids)
    assert targets
    pool = PoolData(w["pool"], w["pool_probs"], pd.DataFrame(index=range(len(w["pool"]))))
    picks = suggest_candidates("targeted", 20, pool, targets, num_failures=int(w["failed"].sum()))
    assert len(picks) == 20 and all("no region holds" not in c.reason for c in picks)
