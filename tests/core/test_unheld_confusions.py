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
from confusion_world import K, PAIR_ROWS, REGION_ROWS, confusion_world

PAIR_REASON = "labelled 4 and predicted 9 that no region holds"


def test_only_the_planted_pair_is_a_target():
    w = confusion_world(0)
    found = unheld_confusions(w["labels"], w["probs"].argmax(1), w["failed"], w["region"], K)
    assert [(c.given, c.predicted) for c in found] == [(4, 9)]
    # The planted failures, and any ordinary error that happens to be a 4 read as a 9.
    assert list(found[0].rows) == list(w["pair_failures"])
    assert 0 < found[0].excess_errors <= len(found[0].rows)
    # Held by a region, the same failures are no target.
    held = w["region"].copy()
    held[PAIR_ROWS] = 1
    assert unheld_confusions(w["labels"], w["probs"].argmax(1), w["failed"], held, K) == []


def test_a_top_loss_failure_the_model_got_right_confuses_nothing():
    w = confusion_world(0)
    failed = w["failed"].copy()
    right = np.flatnonzero(~failed & (w["region"] < 0) & (w["labels"] == 3))[:200]
    failed[right] = True                                  # top-loss failures, correctly predicted
    found = unheld_confusions(w["labels"], w["probs"].argmax(1), failed, w["region"], K)
    assert [(c.given, c.predicted) for c in found] == [(4, 9)]


def _confusion_picks(w, mode: str, monkeypatch) -> list:
    monkeypatch.setattr(targeted_budget, "UNHELD_CONFUSIONS", mode)
    rows = REGION_ROWS
    regions = [TargetRegion(region_id=0, excess_errors=70.0, failure_embeddings=w["x"][rows],
                            failure_indices=rows, failure_ids=w["ids"][rows])]
    regions += confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], w["ids"])
    pool = PoolData(w["pool"], np.full((len(w["pool"]), K), 1.0 / K), pd.DataFrame(index=range(len(w["pool"]))))
    picks = suggest_candidates("targeted", 120, pool, regions, num_failures=int(w["failed"].sum()))
    assert any(c.region_id == 0 for c in picks)           # next to the region, not instead of it
    mine = [c for c in picks if PAIR_REASON in c.reason]
    assert all(c.region_id == -1 and c.nearest_failure_index in w["pair_failures"] for c in mine)
    return mine


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_data_gap_confusion_gets_picks_next_to_the_region(seed, monkeypatch):
    w = confusion_world(seed)
    (target,) = confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], w["ids"])
    assert target.kind != "label_noise" and target.confusion == (4, 9) and target.region_id == -1
    assert len(_confusion_picks(w, "gaps", monkeypatch)) >= 10
    assert _confusion_picks(w, "off", monkeypatch) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_confusion_of_wrong_labels_is_typed_label_noise_and_not_collected(seed, monkeypatch):
    w = confusion_world(seed, flipped=True)
    (target,) = confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], w["ids"])
    assert target.kind == "label_noise"
    assert _confusion_picks(w, "gaps", monkeypatch) == []
    assert len(_confusion_picks(w, "all", monkeypatch)) > 0


def test_confusions_alone_do_not_replace_a_diagnosis():
    """With no region, the budget goes to margin sampling as before, whatever confusions exist."""
    w = confusion_world(0)
    targets = confusion_targets(w["labels"], w["probs"], w["failed"], w["region"], w["x"], w["ids"])
    assert targets
    pool = PoolData(w["pool"], w["rng"].dirichlet(np.ones(K), len(w["pool"])), pd.DataFrame(index=range(len(w["pool"]))))
    picks = suggest_candidates("targeted", 20, pool, targets, num_failures=int(w["failed"].sum()))
    assert len(picks) == 20 and all(PAIR_REASON not in c.reason for c in picks)


@pytest.mark.parametrize("flipped", [False, True])
def test_typing_on_a_sample_of_a_large_run_gives_the_same_kind(flipped, monkeypatch):
    from blindspots_server.core import suggest_inputs

    w = confusion_world(0, flipped=flipped)
    args = (w["labels"], w["probs"], w["failed"], w["region"], w["x"], w["ids"])
    (whole,) = confusion_targets(*args)
    monkeypatch.setattr(suggest_inputs, "MAX_TYPING_ROWS", 1000)
    (sampled,) = confusion_targets(*args)
    assert sampled.kind == whole.kind and (whole.kind == "label_noise") == flipped
    assert list(sampled.failure_indices) == list(whole.failure_indices)


def test_many_classes_cost_the_pairs_that_occur_only():
    """200k classes: a k x k count table would need 4 * 10^10 counters."""
    k = 200_000
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, 5000)
    predicted = labels.copy()
    predicted[:40] = (labels[:40] + 1) % k                 # ordinary errors
    labels[100:160], predicted[100:160] = 7, 123_456        # one confusion
    found = unheld_confusions(labels, predicted, labels != predicted, np.full(5000, -1), k)
    assert [(c.given, c.predicted, len(c.rows)) for c in found] == [(7, 123_456, 60)]
