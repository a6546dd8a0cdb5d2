"""CompareRuns' work: align two runs' rows by sample id, read both diagnoses' per-row
regions and failures, compare with the core, build the message."""
from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from blindspots.v1 import blindspots_pb2 as pb

from ..core.pool_filters import predicate_mask
from ..core.version_comparison import RateChange, VersionComparer
from ..storage import RunRecord, Store
from ..storage.rows import to_row_data
from . import convert
from .errors import FailedPrecondition

DEFAULT_MIN_OVERLAP = 0.25
DEFAULT_ALPHA = 0.05


def _slices(a: pb.Diagnosis, b: pb.Diagnosis) -> list[pb.Slice]:
    """Each slice either diagnosis names (top, tracked, region explanations), once."""
    seen: dict[str, pb.Slice] = {}
    for d in (a, b):
        for s in [*d.slices, *d.tracked_slices, *(r.explanations[0] for r in d.regions if r.explanations)]:
            seen.setdefault(s.name, s)
    return list(seen.values())


def _rate(c: RateChange) -> pb.RateChange:
    return pb.RateChange(support=c.support, failures_a=c.failures_a, failures_b=c.failures_b,
                         error_rate_a=c.error_rate_a, error_rate_a_ci=pb.Interval(low=c.ci_a.low, high=c.ci_a.high),
                         error_rate_b=c.error_rate_b, error_rate_b_ci=pb.Interval(low=c.ci_b.low, high=c.ci_b.high),
                         difference=c.difference,
                         difference_ci=pb.Interval(low=c.difference_ci.low, high=c.difference_ci.high),
                         p_value=c.p_value)


def compare_runs(store: Store, run_a: RunRecord, run_b: RunRecord, diag_a: pb.Diagnosis, diag_b: pb.Diagnosis,
                 min_overlap: float, alpha: float) -> pb.RunComparison:
    """The comparison message of two diagnosed runs; FailedPrecondition when they share no rows."""
    table_a = store.read_rows("run", run_a.id)
    ids_a = table_a.column("sample_id").combine_chunks()
    ids_b = store.read_rows("run", run_b.id, ["sample_id"]).column("sample_id").combine_chunks()
    # Row of each shared id in A and in B (a hash join in Arrow, not a Python loop).
    pos_b = pc.fill_null(pc.index_in(ids_a, value_set=ids_b), -1).to_numpy()
    rows_a = np.flatnonzero(pos_b >= 0)
    rows_b = pos_b[rows_a].astype(np.int64)
    if len(rows_a) == 0:
        raise FailedPrecondition(f"runs {run_a.id!r} and {run_b.id!r} share no sample ids: compare two "
                                 "versions evaluated on the same test set")
    per_a, per_b = store.diagnosis_rows(diag_a.id), store.diagnosis_rows(diag_b.id)
    region_a = per_a.column("region").to_numpy()[rows_a]
    region_b = per_b.column("region").to_numpy()[rows_b]
    failed_a = per_a.column("failed").to_numpy(zero_copy_only=False)[rows_a]
    failed_b = per_b.column("failed").to_numpy(zero_copy_only=False)[rows_b]
    # The test set's metadata is the same for both versions: A's rows describe it.
    metadata = to_row_data(table_a).metadata.iloc[rows_a].reset_index(drop=True)
    named = []
    for s in _slices(diag_a, diag_b):
        predicates = tuple(convert.predicate_from_message(p) for p in s.predicates)
        if predicates and all(p.column in metadata.columns for p in predicates):
            try:
                named.append((s.name, predicate_mask(metadata, predicates)))
            except ValueError:
                continue            # a column's type differs: the slice does not apply
    result = VersionComparer(min_overlap, alpha).fit(region_a, region_b, failed_a, failed_b, named)
    info_a = {r.id: r for r in diag_a.regions}
    info_b = {r.id: r for r in diag_b.regions}

    def region_message(change) -> pb.RegionComparison:
        ra, rb = info_a.get(change.region_a), info_b.get(change.region_b)
        return pb.RegionComparison(
            status=change.status, region_a=change.region_a, region_b=change.region_b, jaccard=change.jaccard,
            rows=_rate(change.rows), slice_a=ra.explanations[0].name if ra and ra.explanations else "",
            slice_b=rb.explanations[0].name if rb and rb.explanations else "",
            kind_a=ra.kind if ra else pb.REGION_KIND_UNSPECIFIED, kind_b=rb.kind if rb else pb.REGION_KIND_UNSPECIFIED,
            q_value=change.q_value)

    return pb.RunComparison(
        run_id_a=run_a.id, run_id_b=run_b.id, diagnosis_id_a=diag_a.id, diagnosis_id_b=diag_b.id,
        num_shared=len(rows_a), num_only_a=len(ids_a) - len(rows_a), num_only_b=len(ids_b) - len(rows_a),
        overall=_rate(result.overall), regions=[region_message(c) for c in result.regions],
        slices=[pb.SliceComparison(name=c.name, rows=_rate(c.rows), q_value=c.q_value) for c in result.slices],
        min_overlap=min_overlap, alpha=alpha, model_version_a=run_a.model_version,
        model_version_b=run_b.model_version)
