"""Rebuild the suggestion engine's inputs from a stored diagnosis."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb

from ..core.suggest_inputs import TargetRegion
from . import convert
from .errors import FailedPrecondition


def target_regions(diagnosis: pb.Diagnosis, run_embeddings: np.ndarray, per_sample: pa.Table,
                   run_ids: Optional[np.ndarray] = None) -> list[TargetRegion]:
    """One TargetRegion per diagnosed region: its failed test rows and best slice."""
    region = per_sample.column("region").to_numpy()
    failed = per_sample.column("failed").to_numpy(zero_copy_only=False).astype(bool)
    if len(region) != len(run_embeddings):
        raise FailedPrecondition(f"diagnosis {diagnosis.id!r} covers {len(region)} rows but the run now has "
                         f"{len(run_embeddings)}; diagnose the run again")
    out = []
    for r in diagnosis.regions:
        idx = np.flatnonzero((region == r.id) & failed)
        if len(idx) == 0:
            continue
        best = r.explanations[0] if r.explanations else None
        out.append(TargetRegion(
            region_id=r.id, excess_errors=r.excess_errors, failure_embeddings=run_embeddings[idx],
            failure_indices=idx, failure_ids=None if run_ids is None else run_ids[idx],
            slice_predicates=tuple(convert.predicate_from_message(p) for p in best.predicates) if best else (),
            kind=convert.KIND_NAMES.get(r.kind, "data_gap")))
    return out
