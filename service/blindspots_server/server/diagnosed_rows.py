"""Line a stored diagnosis's per-row table up with the run's rows as they are now.

A run only grows: rows logged after a diagnosis are not in its per-row table.
Diagnoses record each row's sample id, so rows are matched by id; older ones
(without ids) cover the run's first rows in ingestion order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..storage import DataLoss


@dataclass
class DiagnosedRows:
    """The diagnosis's view of every current run row."""

    region: np.ndarray       # int64 per run row; -1: in no region, or not diagnosed
    failed: np.ndarray       # bool per run row; False where not diagnosed
    diagnosed: np.ndarray    # bool per run row: the diagnosis saw it
    where: np.ndarray        # int64 per run row: its row in the diagnosis's table; -1 if not diagnosed

    @property
    def num_not_diagnosed(self) -> int:
        return int((~self.diagnosed).sum())

    def note(self, diagnosis_id: str) -> str:
        """A sentence for callers when the run has rows the diagnosis did not see ('' if none)."""
        missing = self.num_not_diagnosed
        if not missing:
            return ""
        return (f"the run has {missing} row(s) added after diagnosis {diagnosis_id}, which did not see them; "
                "diagnose again to include them")


def align(per_sample: pa.Table, run_sample_ids: np.ndarray, diagnosis_id: str) -> DiagnosedRows:
    """The diagnosis's regions and failures for each row of ``run_sample_ids`` (the run now)."""
    n = len(run_sample_ids)
    region_of = per_sample.column("region").to_numpy().astype(np.int64)
    failed_of = per_sample.column("failed").to_numpy(zero_copy_only=False).astype(bool)
    if "sample_id" in per_sample.column_names:
        diagnosed_ids = pd.Index(per_sample.column("sample_id").to_pylist())
        where = diagnosed_ids.get_indexer(pd.Index(list(run_sample_ids)))   # -1: not diagnosed
    else:
        if len(region_of) > n:
            # Runs never lose rows: a diagnosis wider than its run is damage, not the caller's doing.
            raise DataLoss(f"diagnosis {diagnosis_id!r} covers {len(region_of)} rows but its run holds {n}")
        where = np.full(n, -1, dtype=np.int64)
        where[:len(region_of)] = np.arange(len(region_of))
    diagnosed = where >= 0
    region = np.where(diagnosed, region_of[np.maximum(where, 0)] if len(region_of) else -1, -1)
    failed = diagnosed & (failed_of[np.maximum(where, 0)] if len(failed_of) else False)
    return DiagnosedRows(region=region.astype(np.int64), failed=np.asarray(failed, dtype=bool),
                         diagnosed=diagnosed, where=np.asarray(where, dtype=np.int64))
