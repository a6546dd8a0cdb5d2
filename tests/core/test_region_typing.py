"""Region typing: a class shifted onto another is a data gap, random wrong labels are label noise.

Both regions look alike to the neighbour rule: their failures sit among correctly
predicted rows of the predicted class and the model is confident. Only the given
labels differ: random where they are wrong, following the input where they are true.
"""
import numpy as np
import pytest

from blindspots_server.core import region_typing
from blindspots_server.core.region_typing import RegionTyper, given_label_lift

CLASSES, DIM = 10, 8


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(CLASSES, DIM))
    true = rng.integers(0, CLASSES, 3000)
    x = centres[true] + rng.normal(size=(3000, DIM))
    labels, predicted = true.copy(), true.copy()
    region = np.full(3000, -1)
    # Region 0: 120 ordinary rows whose given labels were drawn at random (label noise).
    noisy = rng.choice(3000, 120, replace=False)
    labels[noisy] = (true[noisy] + rng.integers(1, CLASSES, 120)) % CLASSES
    region[noisy] = 0
    # Region 1: 60 rows of classes 3 and 5 shifted into class 8's territory, each class to its
    # own side of it; their labels are true, the model reads them all as 8 (a data gap).
    cls = np.where(np.arange(60) < 30, 3, 5)
    side = np.where(cls[:, None] == 3, 2.0, -2.0) * np.eye(DIM)[0]
    xg = centres[8] + side + rng.normal(size=(60, DIM))
    x = np.concatenate([x, xg])
    labels = np.concatenate([labels, cls])
    predicted = np.concatenate([predicted, np.full(60, 8)])
    region = np.concatenate([region, np.ones(60, dtype=int)])
    confidence = np.full(len(x), 0.95)
    failed = labels != predicted
    return x.astype(np.float32), labels, predicted, confidence, failed, region


def _kinds(lift_max):
    saved = region_typing.LABEL_LIFT_MAX
    region_typing.LABEL_LIFT_MAX = lift_max
    try:
        types = RegionTyper(seed=0).fit(*_world(), [0, 1])
    finally:
        region_typing.LABEL_LIFT_MAX = saved
    return {r: t.kind for r, t in types.items()}, types


def test_label_test_tells_a_shifted_class_from_random_wrong_labels():
    kinds, types = _kinds(region_typing.LABEL_LIFT_MAX)
    assert kinds == {0: "label_noise", 1: "data_gap"}
    assert "at random" in types[1].evidence.summary


def test_neighbour_rule_alone_calls_the_shifted_class_label_noise():
    # The reason for the label test: without it both regions are typed label noise.
    kinds, _ = _kinds(None)
    assert kinds == {0: "label_noise", 1: "label_noise"}


def test_lift_is_above_chance_only_where_labels_follow_the_input():
    x, labels, predicted, _, failed, region = _world()
    noise = np.flatnonzero((region == 0) & failed)
    gap = np.flatnonzero((region == 1) & failed)
    agree, chance = given_label_lift(x[noise], labels[noise], predicted[noise], CLASSES)
    assert agree - chance < 0.05
    agree, chance = given_label_lift(x[gap], labels[gap], predicted[gap], CLASSES)
    assert agree - chance > 0.3


@pytest.mark.parametrize("num_classes, rows, expected", [(2, 50, None), (10, 5, None)])
def test_lift_says_nothing_for_two_classes_or_few_rows(num_classes, rows, expected):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    assert given_label_lift(x, rng.integers(0, 2, rows), np.zeros(rows, int), num_classes) is expected


def _two_class_world(seed: int = 0):
    """Two classes. Region 0: 90 rows of class 1 whose given label was flipped to 0 (label
    noise, spread over class 1 like its other rows). Region 1: 90 rows of class 0 lying together
    inside class 1's territory, read as 1 (a data gap), among enough class-1 rows that most of
    each failure's neighbours are correct rows of the prediction, as with label noise."""
    rng = np.random.default_rng(seed)
    centres = np.stack([np.zeros(DIM), np.full(DIM, 3.0)])
    true = rng.integers(0, 2, 3000)
    x = centres[true] + rng.normal(size=(3000, DIM))
    labels, predicted, region = true.copy(), true.copy(), np.full(3000, -1)
    noisy = rng.choice(np.flatnonzero(true == 1), 90, replace=False)
    labels[noisy], region[noisy] = 0, 0
    gap = centres[1] + 0.8 * np.eye(DIM)[0] + 0.6 * rng.normal(size=(90, DIM))
    x = np.concatenate([x, gap]).astype(np.float32)
    labels = np.concatenate([labels, np.zeros(90, int)])
    predicted = np.concatenate([predicted, np.ones(90, int)])
    region = np.concatenate([region, np.ones(90, int)])
    return x, labels, predicted, np.full(len(x), 0.95), labels != predicted, region


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_classes_failures_lying_together_are_a_data_gap(seed, monkeypatch):
    world = _two_class_world(seed)
    monkeypatch.setattr(region_typing, "FAILURE_LIFT_MAX", None)
    before = RegionTyper(seed=0).fit(*world, [0, 1])
    # Without the failure lift the neighbour rule calls both label noise (the reason for it).
    assert {r: t.kind for r, t in before.items()} == {0: "label_noise", 1: "label_noise"}
    monkeypatch.undo()
    after = RegionTyper(seed=0).fit(*world, [0, 1])
    assert {r: t.kind for r, t in after.items()} == {0: "label_noise", 1: "data_gap"}
    assert "neighbours fail" in after[1].evidence.summary
