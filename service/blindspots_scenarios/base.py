"""The data types every family returns: splits, planted conditions and their causes.

A family builds a world (fixed per seed), draws train / test / pool splits from
it and trains a model on the train split. The test split carries the truth a
slice-discovery benchmark scores against: which planted condition each row is in
(``condition``, -1 for none) and, per condition, the metadata predicate that
caused it (``Cause``), if any.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import pandas as pd

SEASONS = {"winter": (12, 1, 2), "spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11)}


@dataclass(frozen=True)
class Term:
    """One predicate of a true cause, over the metadata DataFrame.

    kind: "eq" (column == value), "range" (low <= column < high), "months"
    (timestamp column's month in ``months``), "hours" (hour in ``hours``),
    "weekdays" (weekday 0=Mon..6 in ``days``).
    """

    kind: str
    column: str
    value: str = ""
    low: float = -np.inf
    high: float = np.inf
    parts: tuple[int, ...] = ()

    def matches(self, metadata: pd.DataFrame) -> np.ndarray:
        series = metadata[self.column]
        if self.kind == "eq":
            return (series.astype(str) == self.value).to_numpy()
        if self.kind == "range":
            values = series.to_numpy(dtype=np.float64)
            return (values >= self.low) & (values < self.high)
        stamps = pd.DatetimeIndex(series)
        part = {"months": stamps.month, "hours": stamps.hour, "weekdays": stamps.day_of_week}[self.kind]
        return np.isin(part.to_numpy(), self.parts)

    @property
    def text(self) -> str:
        if self.kind == "eq":
            return f"{self.column}={self.value}"
        if self.kind == "range":
            return f"{self.column} in [{self.low:.4g}, {self.high:.4g})"
        return f"{self.kind[:-1]}({self.column}) in {set(self.parts)}"


@dataclass(frozen=True)
class Cause:
    """A conjunction of terms: the rows it matches are the condition's rows.

    An empty cause means the condition is tied to nothing in the metadata.
    """

    terms: tuple[Term, ...] = ()

    def matches(self, metadata: pd.DataFrame) -> np.ndarray:
        mask = np.ones(len(metadata), dtype=bool)
        for term in self.terms:
            mask &= term.matches(metadata)
        return mask

    @property
    def text(self) -> str:
        return " & ".join(t.text for t in self.terms) if self.terms else "(none)"


@dataclass(frozen=True)
class Condition:
    """One planted failure condition.

    kind: what was done to the rows ("photometric", "geometric", "occlusion",
    "blur_noise", "class_pair", "label_noise", "shift"); ``rarity`` is its share
    of test rows; ``cause`` the metadata predicate whose rows it is (empty: a
    random ``rarity`` share of rows, invisible in the metadata).
    """

    name: str
    kind: str
    rarity: float
    cause: Cause = field(default_factory=Cause)
    strength: float = 1.0
    classes: tuple[int, int] = (0, 1)      # class_pair: (source class, class it is pushed to)

    @property
    def fixable_by_data(self) -> bool:
        """True for data gaps (more training data like it helps), False for label noise."""
        return self.kind != "label_noise"


@dataclass
class Split:
    """One set of rows.

    ``inputs`` is what the model reads (images flattened, tabular features or a
    latent vector); ``labels`` the given labels (noisy inside label-noise
    conditions of the test split), ``true_labels`` the clean ones;
    ``condition`` the planted condition index per row (-1 = none).
    """

    inputs: np.ndarray
    labels: np.ndarray
    true_labels: np.ndarray
    metadata: pd.DataFrame
    condition: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split(self.inputs[idx], self.labels[idx], self.true_labels[idx],
                     self.metadata.iloc[idx].reset_index(drop=True), self.condition[idx])

    def concat(self, other: "Split") -> "Split":
        return Split(np.concatenate([self.inputs, other.inputs]),
                     np.concatenate([self.labels, other.labels]),
                     np.concatenate([self.true_labels, other.true_labels]),
                     pd.concat([self.metadata, other.metadata], ignore_index=True),
                     np.concatenate([self.condition, other.condition]))

    def with_true_labels(self) -> "Split":
        """The same rows labelled correctly (what an annotator returns for picked pool rows)."""
        return Split(self.inputs, self.true_labels.copy(), self.true_labels, self.metadata, self.condition)


class Model(Protocol):
    """What every family's model offers: fit on inputs, then embed and predict."""

    def fit(self, inputs: np.ndarray, labels: np.ndarray) -> "Model": ...

    def embed(self, inputs: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray: ...


@dataclass
class Instance:
    """One family drawn at one seed, with its trained model and the test outputs.

    ``embeddings`` / ``probabilities`` are the model's outputs on the test split
    (what a diagnosis reads). ``make_model()`` returns a fresh untrained model of
    the family's kind, so a closed loop can retrain from scratch:

        model = inst.make_model().fit(*inst.training_set(picked_pool_rows))
        emb, prob = model.embed(inst.test.inputs), model.predict_proba(inst.test.inputs)
    """

    family: str
    seed: int
    num_classes: int
    conditions: tuple[Condition, ...]
    train: Split
    test: Split
    pool: Split
    model: Model
    make_model: Callable[[], Model]
    embeddings: np.ndarray
    probabilities: np.ndarray

    @property
    def failed(self) -> np.ndarray:
        """Test rows the trained model mispredicts (against the given labels)."""
        return self.probabilities.argmax(axis=1) != self.test.labels

    def condition_mask(self, index: int) -> np.ndarray:
        """Test rows in planted condition ``index``."""
        return self.test.condition == index

    def cause_mask(self, index: int) -> np.ndarray | None:
        """Test rows matched by condition ``index``'s true cause; None when it has none."""
        cause = self.conditions[index].cause
        return cause.matches(self.test.metadata) if cause.terms else None

    def training_set(self, extra_pool_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Train inputs and labels, plus the given pool rows with their true labels."""
        split = self.train
        if extra_pool_rows is not None and len(extra_pool_rows):
            split = split.concat(self.pool.subset(np.asarray(extra_pool_rows)).with_true_labels())
        return split.inputs, split.labels
