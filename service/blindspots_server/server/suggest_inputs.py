"""Rebuild the suggestion engine's inputs from a stored diagnosis."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb

from ..core.suggest import TargetRegion
from . import convert
from .diagnosed_rows import align


def target_regions(diagnosis: pb.Diagnosis, run_embeddings: np.ndarray, per_sample: pa.Table,
                   run_ids: np.ndarray) -> tuple[list[TargetRegion], list[str]]:
    """One TargetRegion per diagnosed region (its failed test rows and best slice), and
    notes for the caller on what the targeting could not use (e.g. rows logged after
    the diagnosis, which it did not see)."""
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
            kind=convert.KIND_NAMES.get(r.kind, "data_gap")))
    return out, notes
