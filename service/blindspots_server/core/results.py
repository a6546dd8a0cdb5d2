"""Typed results of the analysis core: what a diagnosis and a suggestion return.

Everything here is plain data (dataclasses, numpy arrays); the server maps it
to protobuf, the storage layer persists it as JSON + Parquet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .time_parts import PART_OPS, part_text, range_text

# progress(fraction_done in [0, 1], stage description); long work calls it often.
ProgressFn = Callable[[float, str], None]


def no_progress(fraction: float, stage: str) -> None:
    """Default progress callback: ignores updates."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Predicate:
    """One condition on a metadata column.

    op: "eq" (column == value), "range" (low <= column < high), "time_range" (the same
    on a timestamp, in unix microseconds; prints ISO dates), "month" / "weekday" /
    "hour" (the timestamp's month 1-12 / weekday 0=Mon..6 / UTC hour 0-23 is in the
    comma-separated set value, e.g. "12,1,2" for Dec-Feb), "missing".
    """

    column: str
    op: str
    value: str = ""
    low: float = math.nan
    high: float = math.nan

    @property
    def subject(self) -> str:
        """What the predicate constrains: the column, or one part of a timestamp ("month(t)").

        A conjunction holds at most one predicate per subject."""
        return f"{self.op}({self.column})" if self.op in PART_OPS else self.column

    @property
    def text(self) -> str:
        if self.op == "eq":
            return f"{self.column}={self.value}"
        if self.op == "range":
            lo = "-inf" if not math.isfinite(self.low) else f"{self.low:.4g}"
            hi = "inf" if not math.isfinite(self.high) else f"{self.high:.4g}"
            return f"{self.column} in [{lo}, {hi})"
        if self.op == "time_range":
            return range_text(self.column, self.low, self.high)
        if self.op in PART_OPS:
            return part_text(self.column, self.op, self.value)
        if self.op == "missing":
            return f"{self.column} is missing"
        return f"{self.column} {self.op} {self.value}"


def slice_name(predicates: tuple[Predicate, ...]) -> str:
    """Short, stable name of a conjunction: predicate texts sorted and joined."""
    return " & ".join(sorted(p.text for p in predicates))


@dataclass
class SliceStat:
    """Error statistics of one metadata slice (a conjunction of predicates)."""

    predicates: tuple[Predicate, ...]
    support: int
    failures: int
    error_rate: float
    ci: Interval
    lift: float
    p_value: float
    q_value: float = math.nan
    score: float = math.nan          # SliceLine score, for whole-test-set slices
    precision: float = math.nan      # for region explanations: P(region | slice)
    recall: float = math.nan         # P(slice | region)
    f1: float = math.nan

    @property
    def name(self) -> str:
        return slice_name(self.predicates)


@dataclass(frozen=True)
class Confusion:
    true_label: int
    predicted_label: int
    count: int


@dataclass(frozen=True)
class Example:
    index: int                       # row index into the diagnosed arrays
    sample_id: str
    uri: str
    label: int
    predicted: int
    confidence: float
    failed: bool


@dataclass(frozen=True)
class RegionEvidence:
    mean_failure_confidence: float
    neighbour_agreement_with_prediction: float
    neighbour_agreement_with_label: float
    relative_density: float
    summary: str
    # Among the region's failures of one prediction: how often a failure's nearest fellow
    # failures carry its given label, and how often two at random do (NaN: not measurable,
    # e.g. two classes). Labels no more predictable than chance: more data like them teaches
    # little (label noise, or inputs that do not show their class).
    failure_label_agreement: float = math.nan
    failure_label_chance: float = math.nan
    # With two classes (NaN otherwise): how often the failures' nearest neighbours fail, and how
    # often rows of the failures' prediction do. Far above: the failures lie together (a data
    # gap), where wrong labels would be scattered over the prediction's rows.
    failure_neighbour_failures: float = math.nan
    prediction_failure_rate: float = math.nan


@dataclass
class FailureRegion:
    """A region of embedding space where the model fails more than baseline."""

    region_id: int
    support: int
    failures: int
    error_rate: float
    ci: Interval
    lift: float
    excess_errors: float
    p_value: float
    q_value: float
    explanations: list[SliceStat] = field(default_factory=list)
    confusions: list[Confusion] = field(default_factory=list)
    typical_failures: list[Example] = field(default_factory=list)
    mean_failure_confidence: float = math.nan
    kind: str = "data_gap"           # "data_gap" | "label_noise" | "mixed"
    evidence: Optional[RegionEvidence] = None


@dataclass
class DiagnosisResult:
    num_samples: int
    num_failures: int
    baseline_error_rate: float
    baseline_ci: Interval
    regions: list[FailureRegion]           # significant ones, ranked by excess errors
    slices: list[SliceStat]                # high-error slices over the whole test set
    num_hypotheses_tested: int
    num_regions_tested: int
    fdr_alpha: float
    # Per test row: the region it was assigned to (-1: none / not significant).
    region_of_sample: np.ndarray
    failed: np.ndarray                     # bool per test row
    params: dict[str, float | int | str] = field(default_factory=dict)
    # Confusions among the failures no region holds (unheld_confusions.UnheldConfusion).
    unheld_confusions: list = field(default_factory=list)
    # Per class (class_metrics.ClassStat), worst first.
    classes: list = field(default_factory=list)


@dataclass(frozen=True)
class SuggestionCandidate:
    pool_index: int                        # row index into the pool arrays
    score: float
    region_id: int                         # -1 when not tied to a region
    reason: str
    nearest_failure_index: int = -1        # row index into the run arrays
    distance: float = math.nan
    slice: str = ""
