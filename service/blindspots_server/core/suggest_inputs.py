"""The suggestion engine's inputs: the pool to pick from and the failure regions to aim at.

Shared by suggest.py (validation, dispatch) and targeted.py (the targeted
selector); living here lets both import them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .pool_index import normalise
from .region_typing import RegionTyper, labels_predictable
from .results import DiagnosisResult, Predicate
from .unheld_confusions import unheld_confusions


@dataclass(frozen=True)
class TargetRegion:
    """A failure region the targeted strategy aims at."""

    region_id: int
    excess_errors: float
    failure_embeddings: np.ndarray      # the region's failed test rows
    failure_indices: np.ndarray         # their row indices in the run (for nearest_failure_index)
    slice_predicates: tuple[Predicate, ...] = ()   # best explaining slice, may be empty
    kind: str = "data_gap"              # label-noise regions get half weight by default (relabel them too)
    failure_ids: np.ndarray | None = None          # their sample ids, for readable reasons
    # Do the failures' given labels follow their inputs (region_typing.labels_predictable)?
    # False: more data like them teaches little; None: not measured.
    labels_predictable: bool | None = None
    # (given, predicted) for a confusion no region holds (unheld_confusions.py); region_id is -1.
    confusion: tuple[int, int] | None = None


@dataclass
class PoolData:
    """The unlabeled pool: one row per sample, in the pool index's row order."""

    embeddings: np.ndarray | None      # None: the rows stay with the index (suggest_candidates' doc)
    probabilities: np.ndarray | None
    metadata: pd.DataFrame
    # True: ``embeddings`` are already unit rows as pool_index.normalise returns them
    # (e.g. normalised in place by a caller that owns them), used without another copy.
    unit_rows: bool = False


def _predictable(evidence) -> bool | None:
    if evidence is None:
        return None
    return labels_predictable(evidence.failure_label_agreement, evidence.failure_label_chance)


# Rows (besides the confusions' failures) that type the confusions no region holds.
MAX_TYPING_ROWS = 50_000


def confusion_targets(labels: np.ndarray, probabilities: np.ndarray, failed: np.ndarray,
                      region_of_sample: np.ndarray, embeddings: np.ndarray, sample_ids: np.ndarray,
                      seed: int = 0) -> list[TargetRegion]:
    """The confusions no region holds (unheld_confusions.py) as targets with region id -1.

    Each is typed like a region, without the label test (its failures share one given
    label by construction, so the test would find them predictable every time).
    """
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(axis=1)
    found = unheld_confusions(labels, predicted, failed, region_of_sample, probabilities.shape[1])
    if not found:
        return []
    ids = np.full(len(labels), -1, dtype=np.int64)
    for i, c in enumerate(found):
        ids[c.rows] = i
    # Typing reads each failure's neighbours: a sample of the other rows is enough, and keeps a
    # 10^6-row run from costing a full-size normalised copy and index here.
    keep = np.arange(len(labels))
    if len(keep) > MAX_TYPING_ROWS:
        rng = np.random.default_rng(seed)
        keep = np.union1d(rng.choice(len(labels), MAX_TYPING_ROWS, replace=False), np.flatnonzero(ids >= 0))
    types = RegionTyper(seed=seed, label_test=False).fit(
        normalise(np.asarray(embeddings[keep], dtype=np.float32)), np.asarray(labels)[keep], predicted[keep],
        probabilities[keep].max(axis=1), np.asarray(failed, dtype=bool)[keep], ids[keep], list(range(len(found))))
    out = []
    for i, c in enumerate(found):
        out.append(TargetRegion(region_id=-1, excess_errors=c.excess_errors, failure_embeddings=embeddings[c.rows],
                                failure_indices=c.rows, failure_ids=np.asarray(sample_ids)[c.rows],
                                kind=types[i].kind, confusion=(c.given, c.predicted)))
    return out


def target_regions_of(result: DiagnosisResult, embeddings: np.ndarray, sample_ids: np.ndarray,
                      labels: np.ndarray | None = None, probabilities: np.ndarray | None = None
                      ) -> list[TargetRegion]:
    """The regions of an in-process diagnosis as the targeted strategy takes them (each with its
    failed rows and best explanation), then, given the test labels and probabilities, the
    confusions no region holds; the server builds the same from a stored diagnosis."""
    regions = []
    for r in result.regions:
        rows = np.flatnonzero((result.region_of_sample == r.region_id) & result.failed)
        best = r.explanations[0].predicates if r.explanations else ()
        regions.append(TargetRegion(region_id=r.region_id, excess_errors=r.excess_errors,
                                    failure_embeddings=embeddings[rows], failure_indices=rows,
                                    slice_predicates=tuple(best), kind=r.kind,
                                    failure_ids=np.asarray(sample_ids)[rows],
                                    labels_predictable=_predictable(r.evidence)))
    if labels is not None and probabilities is not None:
        regions += confusion_targets(labels, probabilities, result.failed, result.region_of_sample, embeddings,
                                     sample_ids)
    return regions
