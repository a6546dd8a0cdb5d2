"""The suggestion engine's inputs: the pool to pick from and the failure regions to aim at.

Shared by suggest.py (validation, dispatch) and targeted.py (the targeted
selector); living here lets both import them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .region_typing import labels_predictable
from .results import DiagnosisResult, Predicate


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


def target_regions_of(result: DiagnosisResult, embeddings: np.ndarray, sample_ids: np.ndarray) -> list[TargetRegion]:
    """The regions of an in-process diagnosis as the targeted strategy takes them (each with its
    failed rows and best explanation); the server builds the same from a stored diagnosis."""
    regions = []
    for r in result.regions:
        rows = np.flatnonzero((result.region_of_sample == r.region_id) & result.failed)
        best = r.explanations[0].predicates if r.explanations else ()
        regions.append(TargetRegion(region_id=r.region_id, excess_errors=r.excess_errors,
                                    failure_embeddings=embeddings[rows], failure_indices=rows,
                                    slice_predicates=tuple(best), kind=r.kind,
                                    failure_ids=np.asarray(sample_ids)[rows],
                                    labels_predictable=_predictable(r.evidence)))
    return regions
