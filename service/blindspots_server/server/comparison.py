"""CompareRuns' work: align two runs' rows by sample id, read both diagnoses' per-row
regions and failures, compare with the core, build the message."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from blindspots.v1 import blindspots_pb2 as pb

from ..core.pool_filters import predicate_mask
from ..core.version_comparison import RateChange, VersionComparer
from ..storage import RunRecord, Store
from ..storage.rows import META_PREFIX, to_row_data
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


def _diagnosed_ids(store: Store, run: RunRecord, per_sample: pa.Table) -> pa.Array:
    """The sample ids of the rows a diagnosis saw: the first rows of its run in ingestion order
    (rows logged after it were not diagnosed). Older diagnoses did not keep the ids."""
    if "sample_id" in per_sample.column_names:
        return per_sample.column("sample_id").combine_chunks()
    ids = store.read_rows("run", run.id, ["sample_id"]).column("sample_id").combine_chunks()
    return ids.slice(0, per_sample.num_rows)


def _labels_and_metadata(store: Store, run: RunRecord, num_rows: int, metadata: bool
                         ) -> tuple[np.ndarray, Optional[pd.DataFrame]]:
    """The given labels of a run's first ``num_rows`` rows, and their metadata columns when asked,
    in one read (no vectors are read)."""
    columns = ["sample_id", "label", *(META_PREFIX + c for c in run.metadata_schema)] if metadata else ["label"]
    table = store.read_rows("run", run.id, columns).slice(0, num_rows)
    if not metadata:
        return table.column("label").to_numpy().astype(np.int64), None
    rows = to_row_data(table)
    return rows.labels, rows.metadata


def _classes(given_a: np.ndarray, given_b: np.ndarray, names: list[str]) -> list[tuple[str, np.ndarray]]:
    """(class name, mask over the shared rows) for each class: the rows both runs give that label
    (a row relabelled between the runs is in no class). ``names``: B's class names."""
    agreed = np.where(given_a == given_b, given_b, -1)
    return [(names[c] if c < len(names) else str(c), agreed == c) for c in np.unique(agreed[agreed >= 0]).tolist()]


def compare_runs(store: Store, run_a: RunRecord, run_b: RunRecord, diag_a: pb.Diagnosis, diag_b: pb.Diagnosis,
                 min_overlap: float, alpha: float, per_b: Optional[pa.Table] = None,
                 metadata_b: Optional[pd.DataFrame] = None, labels_b: Optional[np.ndarray] = None
                 ) -> pb.RunComparison:
    """The comparison message of two diagnosed runs, on the rows both diagnoses saw;
    FailedPrecondition when they share none. ``per_b``, ``metadata_b`` and ``labels_b``: B's
    per-row table, metadata and given labels when B's diagnosis is being made (not stored yet)."""
    per_a = store.diagnosis_rows(diag_a.id)
    per_b = per_b if per_b is not None else store.diagnosis_rows(diag_b.id)
    ids_a, ids_b = _diagnosed_ids(store, run_a, per_a), _diagnosed_ids(store, run_b, per_b)
    # Row of each shared id in A and in B (a hash join in Arrow, not a Python loop).
    pos_b = pc.fill_null(pc.index_in(ids_a, value_set=ids_b), -1).to_numpy()
    rows_a = np.flatnonzero(pos_b >= 0)
    rows_b = pos_b[rows_a].astype(np.int64)
    if len(rows_a) == 0:
        raise FailedPrecondition(f"runs {run_a.id!r} and {run_b.id!r} share no sample ids: compare two "
                                 "versions evaluated on the same test set")
    region_a = per_a.column("region").to_numpy()[rows_a]
    region_b = per_b.column("region").to_numpy()[rows_b]
    failed_a = per_a.column("failed").to_numpy(zero_copy_only=False)[rows_a]
    failed_b = per_b.column("failed").to_numpy(zero_copy_only=False)[rows_b]
    # The test set's metadata is the same for both versions: either run's rows describe it.
    labels_a, metadata_a = _labels_and_metadata(store, run_a, per_a.num_rows, metadata=metadata_b is None)
    if metadata_b is not None:
        metadata = metadata_b.iloc[rows_b].reset_index(drop=True)
    else:
        metadata = metadata_a.iloc[rows_a].reset_index(drop=True)
    if labels_b is None:
        labels_b, _ = _labels_and_metadata(store, run_b, per_b.num_rows, metadata=False)
    named = []
    for s in _slices(diag_a, diag_b):
        predicates = tuple(convert.predicate_from_message(p) for p in s.predicates)
        if predicates and all(p.column in metadata.columns for p in predicates):
            try:
                named.append((s.name, predicate_mask(metadata, predicates)))
            except ValueError:
                continue            # a column's type differs: the slice does not apply
    result = VersionComparer(min_overlap, alpha).fit(
        region_a, region_b, failed_a, failed_b, named,
        _classes(labels_a[rows_a], np.asarray(labels_b, np.int64)[rows_b], list(run_b.class_names)))
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
        slices=[_change_message(c) for c in result.slices], classes=[_change_message(c) for c in result.classes],
        min_overlap=min_overlap, alpha=alpha, model_version_a=run_a.model_version,
        model_version_b=run_b.model_version)


def _change_message(change) -> pb.SliceComparison:
    """A slice's or a class's change (core SliceChange) as its message."""
    return pb.SliceComparison(name=change.name, rows=_rate(change.rows), q_value=change.q_value)


def regressions(c: pb.RunComparison) -> list[tuple[str, str, float]]:
    """What got significantly worse from A to B at the comparison's alpha, as the SDK's
    ``Comparison.regressions()`` finds it: ``(scope, name, difference B - A)``, worst first."""
    found = [("overall", "all shared rows", c.overall.difference)] \
        if c.overall.difference > 0 and c.overall.p_value <= c.alpha else []
    for r in c.regions:
        if r.rows.difference > 0 and r.q_value <= c.alpha:
            name = f"A:R{r.region_a}" if r.region_a >= 0 else f"B:R{r.region_b}"
            where = r.slice_a or r.slice_b
            found.append(("region", f"{name} ({where})" if where else name, r.rows.difference))
    for scope, changes in (("slice", c.slices), ("class", c.classes)):
        found += [(scope, s.name, s.rows.difference) for s in changes if s.rows.difference > 0 and s.q_value <= c.alpha]
    return sorted(found, key=lambda f: -f[2])
