"""Scenario families for the active-learning benchmark, and generic variants where
uncertainty sampling is misled.

A ``Family`` is train / test / pool arrays plus a model factory and the test rows
that form the failing slices. Any source of families (the listings scenario here,
the suite's families in ``blindspots_scenarios`` when present) is turned into one,
and the three variants below apply to any family:

- ``with_ambiguous_pool``: a share of the pool is ambiguous (blends of two
  classes, labelled by a coin flip): aleatoric noise that attracts uncertainty
  sampling and whose labels teach nothing.
- ``with_confident_errors``: a region of the input space whose labels follow
  another rule, absent from training: the model is confidently wrong there, so
  margin and entropy never look at it.
- ``with_noisy_test_region``: a region whose *test* labels are flipped while the
  model is right: its failures are label noise, and collecting more pool samples
  like them is the wrong fix (relabel instead).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import numpy as np
import pandas as pd


class Model(Protocol):
    """A trained model: probabilities, the embedding blindspots sees, the last hidden layer."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...
    def embed(self, x: np.ndarray) -> np.ndarray: ...
    def hidden(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class Part:
    """One split: inputs, given labels, true labels, metadata, ids."""

    x: np.ndarray
    y: np.ndarray
    y_true: np.ndarray
    meta: pd.DataFrame
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> "Part":
        return Part(self.x[rows], self.y[rows], self.y_true[rows],
                    self.meta.iloc[rows].reset_index(drop=True), self.ids[rows])

    def concat(self, other: "Part") -> "Part":
        return Part(np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]),
                    np.concatenate([self.y_true, other.y_true]),
                    pd.concat([self.meta, other.meta], ignore_index=True),
                    np.concatenate([self.ids, other.ids]))


@dataclass
class Family:
    """A benchmark family: what is learned from, tested on, and picked from."""

    name: str
    num_classes: int
    train: Part
    test: Part
    pool: Part
    failing: np.ndarray                      # bool per test row: the failing slices
    fit: Callable[[np.ndarray, np.ndarray, int], Model]
    pool_tags: dict[str, np.ndarray] = field(default_factory=dict)   # bool per pool row
    kind: str = "base"                       # base | ambiguous_pool | confident_errors | noisy_test
    seed: int = 0                            # the draw's seed (also the retraining seed)
    trained: Model | None = None             # the model fitted on ``train``, when the source has one


@dataclass
class Outcome:
    """One strategy's result on one family, seed and budget (pickled in bench caches)."""

    family: str
    kind: str
    seed: int
    budget: int
    strategy: str
    failing_acc: float
    overall_acc: float
    pick_shares: dict        # pool tag -> share of picks carrying it
    seconds: float


# ------------------------------------------------------------------ listings
class ListingsHead:
    """The listings scenario's MLP head, with its hidden layer exposed (for BADGE)."""

    def __init__(self, num_classes: int, seed: int, epochs: int = 20):
        from blindspots_scenarios.listings import ListingsModel

        self.model = ListingsModel(num_classes, seed=seed, epochs=epochs)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "ListingsHead":
        self.model.fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)

    def embed(self, x: np.ndarray) -> np.ndarray:
        return x            # the scenario's inputs are the backbone's embeddings

    def hidden(self, x: np.ndarray) -> np.ndarray:
        import torch

        m = self.model
        with torch.no_grad():
            t = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) - m.mean_) / m.std_
            return m.net_[1](m.net_[0](t)).numpy()


def listings_family(seed: int, world_seed: int = 7, n_train: int = 2000, n_test: int = 3000,
                    n_pool: int = 8000) -> Family:
    """The project's listings scenario (three data gaps, one label-noise condition)."""
    from blindspots_scenarios.listings import make_scenario

    s = make_scenario(n_train=n_train, n_test=n_test, n_pool=n_pool, seed=seed, world_seed=world_seed)
    c = len(s.class_names)

    def part(split) -> Part:
        return Part(split.embeddings, split.labels, split.true_labels, split.metadata, split.ids)

    return Family(name=f"listings(w{world_seed})", num_classes=c, train=part(s.train), test=part(s.test),
                  pool=part(s.pool), failing=s.test.in_data_gap,
                  fit=lambda x, y, sd: ListingsHead(c, sd).fit(x, y),
                  pool_tags={"in failing condition": s.pool.in_data_gap}, seed=seed)


# ------------------------------------------------------------------ variants
def _ball(x: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return xn @ center >= 1.0 - radius


def _region(f: Family, share: float, rng: np.random.Generator, avoid: np.ndarray) -> tuple[np.ndarray, float]:
    """A cosine ball around a test row outside ``avoid`` holding about ``share`` of the test set."""
    xn = f.test.x / np.maximum(np.linalg.norm(f.test.x, axis=1, keepdims=True), 1e-12)
    for _ in range(50):
        center = xn[rng.choice(np.flatnonzero(~avoid))]
        d = 1.0 - xn @ center
        radius = float(np.quantile(d, share))
        inside = d <= radius
        if (inside & avoid).mean() < 0.2 * inside.mean():   # mostly fresh ground
            return center, radius
    return center, radius


def with_ambiguous_pool(f: Family, share: float = 0.2, seed: int = 0) -> Family:
    """Add ambiguous pool rows (``share`` of the new pool): blends of two pool rows of
    different classes, each labelled by a coin flip between the two."""
    rng = np.random.default_rng(seed + 7001)
    n = int(round(len(f.pool) * share / (1 - share)))
    i = rng.integers(0, len(f.pool), n)
    j = rng.integers(0, len(f.pool), n)
    keep = f.pool.y_true[i] != f.pool.y_true[j]
    i, j = i[keep], j[keep]
    a = rng.uniform(0.4, 0.6, (len(i), 1)).astype(np.float32)
    x = a * f.pool.x[i] + (1 - a) * f.pool.x[j]
    x += rng.normal(0, 0.02 * float(np.std(f.pool.x)), x.shape).astype(np.float32)
    y = np.where(rng.random(len(i)) < 0.5, f.pool.y_true[i], f.pool.y_true[j])
    junk = Part(x.astype(f.pool.x.dtype), y, y, f.pool.meta.iloc[i].reset_index(drop=True),
                np.array([f"ambiguous-{k:07d}" for k in range(len(i))]))
    pool = f.pool.concat(junk)
    order = rng.permutation(len(pool))          # junk is not at the end of the pool
    tags = {k: np.concatenate([v, np.zeros(len(i), bool)])[order] for k, v in f.pool_tags.items()}
    tags["ambiguous"] = np.concatenate([np.zeros(len(f.pool), bool), np.ones(len(i), bool)])[order]
    return replace(f, name=f"{f.name}+ambiguous pool", pool=pool.take(order), pool_tags=tags,
                   kind="ambiguous_pool")


def with_confident_errors(f: Family, share: float = 0.05, seed: int = 0) -> Family:
    """A region (``share`` of test) whose labels follow another rule (class k -> k+1) and
    that training lacks: the model is confidently wrong there. It joins the failing slices."""
    rng = np.random.default_rng(seed + 7002)
    center, radius = _region(f, share, rng, f.failing)
    c = f.num_classes

    def shifted(p: Part) -> tuple[Part, np.ndarray]:
        inside = _ball(p.x, center, radius)
        y_true = np.where(inside, (p.y_true + 1) % c, p.y_true)
        y = np.where(inside, (p.y + 1) % c, p.y)
        return Part(p.x, y, y_true, p.meta, p.ids), inside

    train, in_train = shifted(f.train)
    keep = ~in_train | (rng.random(len(train)) < 0.02)      # training barely saw it
    test, in_test = shifted(f.test)
    pool, in_pool = shifted(f.pool)
    tags = dict(f.pool_tags)
    tags["in failing condition"] = tags.get("in failing condition", np.zeros(len(pool), bool)) | in_pool
    tags["confident-error region"] = in_pool
    return replace(f, name=f"{f.name}+confident errors", train=train.take(np.flatnonzero(keep)),
                   test=test, pool=pool, failing=f.failing | in_test, pool_tags=tags,
                   kind="confident_errors", trained=None)


def with_noisy_test_region(f: Family, share: float = 0.06, flip: float = 0.6,
                           seed: int = 0) -> Family:
    """A region (``share`` of test) whose given test labels are flipped for ``flip`` of its
    rows; train and pool are clean there, so the model is right and the failures are noise."""
    rng = np.random.default_rng(seed + 7003)
    center, radius = _region(f, share, rng, f.failing)
    inside = _ball(f.test.x, center, radius) & ~f.failing
    flipped = inside & (rng.random(len(inside)) < flip)
    y = f.test.y.copy()
    y[flipped] = (y[flipped] + rng.integers(1, f.num_classes, flipped.sum())) % f.num_classes
    test = Part(f.test.x, y, f.test.y_true, f.test.meta, f.test.ids)
    tags = dict(f.pool_tags)
    tags["noisy-label region"] = _ball(f.pool.x, center, radius)
    return replace(f, name=f"{f.name}+noisy test region", test=test, pool_tags=tags, kind="noisy_test")


VARIANTS: dict[str, Callable[..., Family]] = {
    "ambiguous_pool": with_ambiguous_pool,
    "confident_errors": with_confident_errors,
    "noisy_test": with_noisy_test_region,
}
