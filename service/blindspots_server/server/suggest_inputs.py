"""Rebuild the suggestion engine's inputs from a stored diagnosis."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb

from ..core.region_typing import labels_predictable
from ..core.suggest import predicate_mask
from ..core.suggest_inputs import TargetRegion, confusion_targets
from . import convert
from .diagnosed_rows import align


def _usable_on_pool(regions: list[TargetRegion], pool_metadata: pd.DataFrame) -> tuple[list[TargetRegion], list[str]]:
    """Regions whose slice the pool's metadata cannot express (a column it lacks, or of
    another type) lose the slice credit, with a note; they are still targeted by embedding."""
    out, notes = [], []
    for r in regions:
        if r.slice_predicates:
            try:
                predicate_mask(pool_metadata.iloc[:0], r.slice_predicates)
            except ValueError as exc:
                notes.append(f"region {r.region_id}'s slice cannot be evaluated on the pool "
                             f"({str(exc).removeprefix('slice_predicates: ')}): targeted without its slice credit")
                r = replace(r, slice_predicates=())
        out.append(r)
    return out, notes


def _predictable(region: pb.Region) -> bool | None:
    """The label test on a stored region (None where a diagnosis did not measure it, e.g. one
    stored before the test existed)."""
    ev = region.evidence
    if not (region.HasField("evidence") and ev.HasField("failure_label_agreement")
            and ev.HasField("failure_label_chance")):
        return None
    return labels_predictable(ev.failure_label_agreement, ev.failure_label_chance)


def target_regions(diagnosis: pb.Diagnosis, run_embeddings: np.ndarray, per_sample: pa.Table,
                   run_ids: np.ndarray, pool_metadata: Optional[pd.DataFrame] = None,
                   run_labels: Optional[np.ndarray] = None, run_probabilities: Optional[np.ndarray] = None
                   ) -> tuple[list[TargetRegion], list[str]]:
    """One TargetRegion per diagnosed region (its failed test rows and best slice), then, given
    the run's labels and probabilities, the confusions no region holds
    (core/unheld_confusions.py); and notes for the caller on what the targeting could not use
    (rows logged after the diagnosis, which it did not see; slices on metadata the pool lacks)."""
    seen = align(per_sample, run_ids, diagnosis.id)
    notes = [seen.note(diagnosis.id)] if seen.num_not_diagnosed else []
    out = []
    for r in diagnosis.regions:
        idx = np.flatnonzero((seen.region == r.id) & seen.failed)
        if len(idx) == 0:
            continue
        best = r.explanations[0] if r.explanations else None
        out.append(TargetRegion(
            region_id=r.id, excess_errors=r.excess_errors, failure_embeddings=run_embeddings[idx],
            failure_indices=idx, failure_ids=run_ids[idx],
            slice_predicates=tuple(convert.predicate_from_message(p) for p in best.predicates) if best else (),
            kind=convert.KIND_NAMES.get(r.kind, "data_gap"), labels_predictable=_predictable(r)))
    if run_labels is not None and run_probabilities is not None:
        out += confusion_targets(run_labels, run_probabilities, seen.failed, seen.region, run_embeddings, run_ids)
    if pool_metadata is not None:
        out, slice_notes = _usable_on_pool(out, pool_metadata)
        notes += slice_notes
    return out, notes
