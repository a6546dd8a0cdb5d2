"""Which slices to follow across model versions: the top slices of the latest
diagnosis of every other run of the same project and model, newest first."""
from __future__ import annotations

from blindspots.v1 import blindspots_pb2 as pb

from ..core.results import Predicate
from ..storage import NotFound, RunRecord, Store
from . import convert

MAX_EARLIER_RUNS = 1000


def slices_to_track(store: Store, run: RunRecord, per_run: int, limit: int,
                    exclude: set[str]) -> list[tuple[Predicate, ...]]:
    """Up to ``limit`` slices (each a conjunction), ``per_run`` from each earlier run."""
    if not run.model_name:
        return []
    earlier = [r for r in store.list_runs([run.project], MAX_EARLIER_RUNS, 0)
               if r.model_name == run.model_name and r.id != run.id]
    earlier.sort(key=lambda r: r.created_at, reverse=True)
    out: list[tuple[Predicate, ...]] = []
    seen = set(exclude)
    for other in earlier:
        try:
            diagnosis = pb.Diagnosis.FromString(store.latest_diagnosis(other.id).payload)
        except NotFound:
            continue
        for s in diagnosis.slices[:per_run]:
            if s.name in seen:
                continue
            seen.add(s.name)
            out.append(tuple(convert.predicate_from_message(p) for p in s.predicates))
            if len(out) >= limit:
                return out
    return out
