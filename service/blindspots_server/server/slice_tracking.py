"""A run's other versions (runs of the same project and model): which slices to follow
across them (the top slices of each one's latest diagnosis, newest first), and which one a
new diagnosis is compared with (the previous version: the newest earlier one on the same rows)."""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from blindspots.v1 import blindspots_pb2 as pb

from ..core.results import Predicate, slice_name
from ..storage import NotFound, RunRecord, Store
from . import convert

MAX_EARLIER_RUNS = 1000


def _as_today(p: Predicate, schema: dict[str, str]) -> Predicate:
    """A range on a timestamp stored before ranges on timestamps had their own op
    becomes a time_range: the same rows, shown with ISO dates."""
    if p.op == "range" and schema.get(p.column) == "timestamp":
        return replace(p, op="time_range")
    return p


def diagnosed_versions(store: Store, run: RunRecord,
                       created_before: bool = False) -> Iterator[tuple[RunRecord, pb.Diagnosis]]:
    """The other runs of ``run``'s project and model that have a diagnosis, newest first, each
    with its latest diagnosis; none without a model name. ``created_before``: only those created
    before ``run`` (the earlier versions; created, not diagnosed: diagnosing an old version
    again compares it with those before it, not with newer ones)."""
    if not run.model_name:
        return
    others = [r for r in store.list_runs([run.project], MAX_EARLIER_RUNS, 0)
              if r.model_name == run.model_name and r.id != run.id
              and not (created_before and r.created_at >= run.created_at)]
    for other in sorted(others, key=lambda r: r.created_at, reverse=True):
        try:
            yield other, pb.Diagnosis.FromString(store.latest_diagnosis(other.id).payload)
        except NotFound:
            continue


def slices_to_track(store: Store, run: RunRecord, per_run: int, limit: int,
                    exclude: set[str]) -> list[tuple[Predicate, ...]]:
    """Up to ``limit`` slices (each a conjunction), ``per_run`` from each earlier run."""
    out: list[tuple[Predicate, ...]] = []
    seen = set(exclude)
    for other, diagnosis in diagnosed_versions(store, run):
        for s in diagnosis.slices[:per_run]:
            predicates = tuple(_as_today(convert.predicate_from_message(p), other.metadata_schema)
                               for p in s.predicates)
            # Named as today: a diagnosis stored before a naming change (e.g. dates shown as
            # microseconds) still dedupes against this run's slices.
            name = slice_name(predicates)
            if name in seen:
                continue
            seen.add(name)
            out.append(predicates)
            if len(out) >= limit:
                return out
    return out
