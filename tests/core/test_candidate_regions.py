"""The three sources of candidate regions besides plain clusters, each on data built to need it.

- rows labelled a among rows labelled b (label_neighbourhoods): a class-pair
  confusion that leaves no cluster once class directions are projected out;
- a cluster holding two confusions is split by class (diagnosis._split_by_class);
- a significant metadata slice whose failures no cluster holds becomes a region.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from blindspots_server.core.diagnosis import Diagnoser, _split_by_class
from blindspots_server.core.label_neighbourhoods import disagreement_pairs, neighbourhood_label


def _classes(n: int, k: int, dim: int, rng: np.random.Generator, spread: float = 1.0):
    means = rng.normal(0, 4.0, (k, dim))
    labels = rng.integers(0, k, n)
    return labels, means, means[labels] + rng.normal(0, spread, (n, dim))


def _probabilities(x: np.ndarray, means: np.ndarray) -> np.ndarray:
    """A nearest-mean model: what the embedding looks like is what it predicts."""
    d = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    logits = -(d - d.min(axis=1, keepdims=True)) / 4.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _metadata(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"device": rng.choice(["d0", "d1", "d2", "d3"], n),
                         "batch": rng.integers(0, 100, n).astype(float)})


def _fit(x, labels, probs, meta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Diagnoser().fit(x, labels, probs, meta)


def _best_f1(result, truth: np.ndarray) -> float:
    best = 0.0
    for r in result.regions:
        members = (result.region_of_sample == r.region_id) & result.failed
        t = truth & result.failed
        best = max(best, 2 * float((members & t).sum()) / float(members.sum() + t.sum()))
    return best


def test_rows_labelled_a_among_b_form_a_pair():
    rng = np.random.default_rng(3)
    labels, means, x = _classes(3000, 6, 16, rng)
    pushed = np.flatnonzero(labels == 2)[:60]
    x[pushed] = means[4] + rng.normal(0, 1.0, (60, 16))      # labelled 2, drawn as 4
    said = neighbourhood_label(x.astype(np.float32), labels)
    counted = np.zeros(len(labels), dtype=bool)
    counted[pushed[::2]] = True
    pairs = disagreement_pairs(labels, said, counted, min_count=10)
    assert [(a, b) for a, b, _ in pairs] == [(2, 4)]
    assert pairs[0][2][pushed].mean() > 0.9
    # Not counted rows do not make a pair: the choice never looks at held-out outcomes.
    assert disagreement_pairs(labels, said, np.zeros(len(labels), dtype=bool), min_count=10) == []


def test_a_class_pair_confusion_is_a_region():
    rng = np.random.default_rng(4)
    labels, means, x = _classes(4000, 6, 16, rng)
    pushed = np.flatnonzero(labels == 1)[:80]
    x[pushed] = means[5] + rng.normal(0, 1.0, (80, 16))
    truth = np.zeros(len(labels), dtype=bool)
    truth[pushed] = True
    result = _fit(x, labels, _probabilities(x, means), _metadata(len(labels), rng))
    assert _best_f1(result, truth) >= 0.8
    without = Diagnoser(pair_regions=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = without.fit(x, labels, _probabilities(x, means), _metadata(len(labels), rng))
    assert _best_f1(plain, truth) < _best_f1(result, truth)


def test_a_cluster_of_two_confusions_is_split_by_class():
    labels = np.array([0] * 30 + [1] * 30 + [2] * 4 + [3] * 39 + [9])      # ten classes
    region = np.array([0] * 64 + [1] * 40)
    clustered = np.ones(len(labels), dtype=bool)
    num = _split_by_class(region, 2, labels, clustered, min_size=10)
    assert num == 3
    assert len(set(region[labels == 0])) == 1 and len(set(region[labels == 1])) == 1
    assert region[labels == 0][0] != region[labels == 1][0]
    assert set(region[labels >= 3]) == {1}          # one class: nothing to split
    # A binary task is never split: each class always holds half of an even share.
    region2 = np.zeros(40, dtype=np.int64)
    assert _split_by_class(region2, 1, np.array([0, 1] * 20), np.ones(40, dtype=bool), 5) == 1


def test_a_metadata_cause_without_a_cluster_becomes_a_region():
    rng = np.random.default_rng(5)
    labels, means, x = _classes(5000, 6, 16, rng, spread=1.6)
    meta = _metadata(len(labels), rng)
    meta.loc[rng.random(len(labels)) < 0.04, "device"] = "d_bad"
    bad = (meta["device"] == "d_bad").to_numpy()
    probs = _probabilities(x, means)
    # Labels flipped on a random 70% of one device's rows: no place in the embedding.
    flip = bad & (rng.random(len(labels)) < 0.7)
    labels = labels.copy()
    labels[flip] = (labels[flip] + rng.integers(1, 6, int(flip.sum()))) % 6
    result = _fit(x, labels, probs, meta)
    assert _best_f1(result, bad) >= 0.8
    region = max(result.regions, key=lambda r: ((result.region_of_sample == r.region_id) & bad).sum())
    assert [str(p.value) for p in region.explanations[0].predicates] == ["d_bad"]
    plain = Diagnoser(slice_regions=False, grow_to_cause=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = plain.fit(x, labels, probs, meta)
    assert _best_f1(before, bad) < 0.8


def test_a_tailored_cut_pays_for_the_cuts_it_was_chosen_from():
    from blindspots_server.core.metadata_bins import bin_metadata
    from blindspots_server.core.slice_explanations import RegionExplainer

    rng = np.random.default_rng(6)
    x = np.round(rng.uniform(0, 1, 2000), 3)
    meta = pd.DataFrame({"x": x, "device": rng.choice(["a", "b"], 2000)})
    members = x >= 0.83
    found = RegionExplainer(min_support=10).fit(bin_metadata(meta, 5), members)
    best = found[0]
    assert [p.op for p in best.predicates] == ["range"] and best.f1 > 0.95
    # The best of every cut in both directions: that many hypotheses, not one.
    assert best.choices == 2 * (len(np.unique(x)) - 1)
    fixed = [e for e in found if all(p.op == "eq" for p in e.predicates)]
    assert all(e.choices == 1 for e in fixed)
