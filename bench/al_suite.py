"""The scenario suite's families (``blindspots_scenarios``) as active-learning families.

Each suite instance has a pool and a model that retrains from scratch; its
failing slices are the test rows of the planted conditions that more data can
fix (data gaps, not label noise). Families without such rows (the null ones)
have nothing to fix and are left out.
"""
from __future__ import annotations

import numpy as np

from al_families import Family, Part


class SuiteModel:
    """A suite model with the hidden layer BADGE reads: its embedding (the penultimate layer)."""

    def __init__(self, model):
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray) -> "SuiteModel":
        self.model.fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)

    def embed(self, x: np.ndarray) -> np.ndarray:
        return self.model.embed(x)

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return self.model.embed(x)


def _part(split, prefix: str) -> Part:
    ids = np.array([f"{prefix}-{i:07d}" for i in range(len(split))])
    return Part(split.inputs, split.labels, split.true_labels, split.metadata, ids)


def sized(name: str) -> tuple[str, int | None]:
    """``"digits_pairs@2000"`` -> ("digits_pairs", 2000): a family drawn at another test size
    (the same half: a dev family at a held-out family's size is still dev); no suffix: quick size."""
    family, _, size = name.partition("@")
    return family, int(size) if size else None


def suite_family(name: str, seed: int, inst=None) -> Family | None:
    """One suite family at one seed (quick test sizes, or ``name@size``), or None when nothing in it is
    fixable. ``inst``: that family and seed already built (``blindspots_scenarios.build``)."""
    from blindspots_scenarios import build

    if inst is None:
        family, n_test = sized(name)
        inst = build(family, seed, quick=True, n_test=n_test)
    fixable = [k for k, c in enumerate(inst.conditions) if c.fixable_by_data]
    failing = np.isin(inst.test.condition, fixable)
    if not failing.any():
        return None
    make = inst.make_model
    return Family(name=name, num_classes=inst.num_classes, train=_part(inst.train, "train"),
                  test=_part(inst.test, "test"), pool=_part(inst.pool, "pool"), failing=failing,
                  fit=lambda x, y, sd: SuiteModel(make()).fit(x, y),
                  pool_tags={"in failing condition": np.isin(inst.pool.condition, fixable)}, seed=seed,
                  trained=SuiteModel(inst.model))


def suite_families(split: str, draw: int, names: list[str]) -> list[Family]:
    """The named suite families at the ``draw``-th seed of their half."""
    from blindspots_scenarios import seeds

    seed = seeds("dev" if split == "dev" else "held_out", draw + 1)[draw]
    return [f for f in (suite_family(n, seed) for n in names) if f is not None]
