"""The work behind Suggest: load rows, build exclusions, call the core, store the set."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from blindspots.v1 import blindspots_pb2 as pb

from ..core.results import ProgressFn
from ..core.pool_coverage import RegionCoverage, pool_coverage
from ..core.pool_index import normalise_in_place
from ..core.suggest import PoolData, budget_note, filter_mask, query_target, suggest_candidates
from ..storage import DataLoss, NotFound, PoolRecord, RunRecord, Store, SuggestionSetRecord, new_id
from ..storage.rows import META_PREFIX
from . import convert
from .pool_indexes import PoolIndexes
from .suggestion_sets import candidates as set_candidates
from .suggestion_sets import set_message, set_table
from .suggest_inputs import target_regions
from .validation import InvalidArgument


@dataclass
class SuggestOutcome:
    """A stored suggestion set, its candidates, and what the answer says about itself."""

    record: SuggestionSetRecord
    candidates: list[pb.Candidate]
    exclusions: pb.SuggestionExclusions
    note: str
    coverage: list[RegionCoverage] = field(default_factory=list)
    stored: Optional[pb.SuggestionSet] = None   # a set answered again: its last message as stored

    def done_message(self) -> pb.SuggestionSet:
        if self.stored is not None:
            return self.stored
        msg = convert.suggestion_set_message(self.record)
        msg.exclusions.CopyFrom(self.exclusions)
        msg.note = self.note
        for c in self.coverage:
            found = np.isfinite(c.median_distance)      # -1: no eligible row among the neighbours searched
            msg.pool_coverage.add(region_id=c.region_id, failures=c.failures, covered=c.covered, reach=c.reach,
                                  median_distance=c.median_distance if found else -1.0,
                                  distance_ratio=c.distance_ratio if found else -1.0)
        return msg


def _exclusions(sample_ids: np.ndarray, keep: np.ndarray, run_ids: set, given_ids: set,
                earlier: set, labeled: set) -> tuple[np.ndarray, pb.SuggestionExclusions]:
    """Bool mask of pool rows that may not be picked, and the count under each row's first reason."""
    ids = pa.array(sample_ids, pa.string())
    excluded = np.zeros(len(sample_ids), dtype=bool)
    counts = {}
    for name, blocked in (("run_ids", run_ids), ("labeled", labeled), ("given_ids", given_ids),
                          ("earlier_picks", earlier)):
        hit = np.zeros(len(sample_ids), dtype=bool)
        if blocked:
            # A hash lookup in Arrow: np.isin on object arrays compares every pair
            # (minutes at 100k x 200k).
            hit = pc.is_in(ids, value_set=pa.array(list(blocked), pa.string())).to_numpy(zero_copy_only=False)
        counts[name] = int((hit & ~excluded).sum())
        excluded |= hit
    counts["filtered_out"] = int((~keep & ~excluded).sum())
    excluded |= ~keep
    return excluded, pb.SuggestionExclusions(pool_rows=len(sample_ids), eligible=int((~excluded).sum()),
                                             **counts)


class Suggestions:
    def __init__(self, store: Store, indexes: PoolIndexes):
        self.store = store
        self.indexes = indexes

    def run(self, run: RunRecord, pool: PoolRecord, diagnosis: Optional[pb.Diagnosis], request: pb.SuggestRequest,
            strategy: str, filters, progress: ProgressFn) -> "SuggestOutcome":
        try:
            if request.allow_repeats and not request.request_id:
                return self._run(run, pool, diagnosis, request, strategy, filters, progress)
            # Rounds that leave out earlier picks run one at a time per run and pool (across replicas
            # too): two labeling queues asked for at once get disjoint picks, as if asked one after the other.
            # So do calls with a request_id: a repeat waits for the first, then answers with its set.
            with self.store.exclusive(f"suggest/{run.id}/{pool.id}", waiting=lambda: progress(
                    0.0, "waiting for the round asked for before this one (same run and pool) to finish")):
                if request.request_id:
                    earlier = self.store.find_suggestion_set(run.id, pool.id, request.request_id)
                    if earlier is not None:
                        return self._answered(earlier, request, strategy, progress)
                return self._run(run, pool, diagnosis, request, strategy, filters, progress)
        except DataLoss:
            # Files that vanished under a read (Ray shards open them by themselves) are a deletion,
            # not damage, when the run or pool is gone: NOT_FOUND, as for a call made after it.
            for target, target_id in (("run", run.id), ("pool", pool.id)):
                if not self.store.exists(target, target_id):
                    raise NotFound(f"{target} {target_id!r} was deleted while the suggestion was made") from None
            raise

    def _answered(self, record: SuggestionSetRecord, request: pb.SuggestRequest, strategy: str,
                  progress: ProgressFn) -> "SuggestOutcome":
        """A repeated request (same request_id, run and pool): the set the first call stored, as it
        answered then."""
        # A targeted round that fell back to margin stored "margin": the strategy asked for is
        # what the set's reasons say it fell back from, so only the budget must match then.
        fell_back = strategy == "targeted" and record.strategy in ("margin", "kcenter")
        if record.budget != request.budget or (record.strategy != strategy and not fell_back):
            raise InvalidArgument("request_id", f"{request.request_id!r} already made suggestion set {record.id!r} "
                                  f"(strategy {record.strategy!r}, budget {record.budget}), not strategy "
                                  f"{strategy!r} with budget {request.budget}: use a new request_id")
        progress(0.5, f"request {request.request_id!r} was answered before: suggestion set {record.id} again "
                      "(nothing new picked)")
        record, table = self.store.read_suggestion_set(record.id, record)
        answer = set_message(record, table)
        return SuggestOutcome(record, set_candidates(table, 0, table.num_rows), answer.exclusions, answer.note,
                              stored=answer)

    def _run(self, run: RunRecord, pool: PoolRecord, diagnosis: Optional[pb.Diagnosis], request: pb.SuggestRequest,
             strategy: str, filters, progress: ProgressFn) -> "SuggestOutcome":
        progress(0.0, "loading pool rows")
        # The pool index holds the pool's vectors (in this process, or in its shards): a targeted or
        # similar ranking reads the few rows it scores from it (core.suggest, pool.embeddings=None),
        # and uncertainty or random picks read none, so this process reads the small columns only,
        # not the vectors (0.5 GB per 1M x 128-d rows). kcenter needs them all.
        searches = strategy in ("targeted", "similar")     # near failures or query rows, by the pool index
        columns = (None if strategy == "kcenter" else
                   ["sample_id", "uri", "probabilities", *(META_PREFIX + c for c in pool.metadata_schema)])
        # Checked between batch files: a cancelled call stops reading (progress raises).
        pool_rows = self.store.read_row_data("pool", pool.id, columns, progress=lambda f, stage: progress(
            0.04 * f, f"loading pool rows: {stage}"))
        try:
            keep = filter_mask(pool_rows.metadata, filters) if filters else np.ones(len(pool_rows), bool)
        except ValueError as exc:
            raise InvalidArgument("filters", str(exc)) from None
        progress(0.05, "loading run rows")
        # Labels and probabilities find the confusions no region holds (targeted only).
        targeting = strategy == "targeted" and diagnosis is not None
        wanted = ["sample_id", "embedding"] + (["label", "probabilities"] if targeting else [])
        run_rows = self.store.read_row_data("run", run.id, wanted, progress=lambda f, stage: progress(
            0.05 + 0.04 * f, f"loading run rows: {stage}"))
        run_ids, run_embeddings = run_rows.sample_ids, run_rows.embeddings
        run_labels, run_probabilities = run_rows.labels, run_rows.probabilities
        del run_rows
        # Labeled samples are never picked again, repeats allowed or not: the
        # labeling tool already answered for them.
        earlier = set() if request.allow_repeats else self.store.suggested_ids(run.id, pool.id)
        excluded, exclusions = _exclusions(pool_rows.sample_ids, keep, set(run_ids.tolist()),
                                           set(request.exclude_ids), earlier,
                                           self.store.labeled_ids("pool", pool.id))
        notes = []
        if request.budget > exclusions.eligible:
            notes.append(budget_note(request.budget, int(exclusions.eligible)))
        regions, target_notes, query = [], [], None
        if strategy == "similar":
            query = _query_rows(request.query_ids, run_ids, run_embeddings, run.id)
        elif diagnosis is not None:
            regions, target_notes = target_regions(diagnosis, run_embeddings,
                                                   self.store.diagnosis_rows(diagnosis.id), run_ids,
                                                   pool_rows.metadata, run_labels, run_probabilities)
            if request.region_ids:
                regions = chosen_regions(regions, request.region_ids)
            notes += target_notes
        del run_labels, run_probabilities
        note = ""
        if strategy == "targeted" and not any(r.confusion is None for r in regions):
            # A model without significant failure regions still gets a labeling queue
            # (a daily pipeline should not break); the reasons and the set say what ran.
            fallback = "margin" if pool_rows.probabilities is not None else "kcenter"
            note = (f"diagnosis {diagnosis.id if diagnosis else '-'} found no failure region to target; "
                    f"picked by {fallback} instead: ")
            notes.append(note.rstrip(": "))
            strategy = fallback
        # The run's vectors serve kcenter (distance from what is labeled) only; targeted
        # regions hold copies of their failure rows. Released before the ranking's own copies.
        labeled = run_embeddings if strategy == "kcenter" else None
        del run_embeddings
        embeddings = pool_rows.embeddings if columns is None else None     # read: kcenter was asked for
        index = None
        if searches:
            progress(0.1, "updating the pool index")
            index = self.indexes.ensure_at(pool.id, len(pool_rows))
        # The rows are read here after all for kcenter (a targeted call without a region or
        # probabilities fell back to it), and where an index of codes in this process (IVF-SQ8 or
        # PQ, past 2 GiB of vectors) gives only decoded rows, so that the picks do not depend on it.
        codes_here = index is not None and not self.indexes.sharded and not index.holds_rows
        if embeddings is None and (strategy == "kcenter" or (strategy in ("targeted", "similar") and codes_here)):
            embeddings = self.store.read_row_data("pool", pool.id, ["embedding"]).embeddings[:len(pool_rows)]
        progress(0.2, f"ranking candidates ({strategy})")
        # The rows were read for this call alone: normalised in place, the ranking needs no copy.
        unit = strategy in ("targeted", "similar", "kcenter")
        if unit and embeddings is not None:
            normalise_in_place(embeddings)
        picks = suggest_candidates(
            strategy, request.budget,
            PoolData(embeddings=embeddings, probabilities=pool_rows.probabilities,
                     metadata=pool_rows.metadata, unit_rows=unit),
            regions, labeled_embeddings=labeled, excluded=excluded, index=index,
            seed=request.seed, uncertainty_weight=request.uncertainty_weight or None,
            slice_weight=request.slice_weight or None,
            progress=lambda f, s: progress(0.2 + 0.75 * f, s),
            # Regions chosen by the caller take the whole budget: no margin share for the others.
            num_failures=diagnosis.num_failures if diagnosis is not None and not request.region_ids else None,
            query=query)
        coverage = []
        if strategy == "targeted":
            progress(0.95, "measuring how well the pool covers each region")
            coverage = pool_coverage(regions, index.search, index.vectors if embeddings is None
                                     else embeddings.__getitem__, ~excluded, seed=request.seed)
        if note:
            picks = [replace(c, reason=note + c.reason) for c in picks]
        if target_notes:   # what the targeting could not use, on every candidate (the set stores reasons)
            picks = [replace(c, reason=f"{c.reason} [note: {'; '.join(target_notes)}]") for c in picks]
        candidates = [pb.Candidate(
            rank=i + 1, sample_id=str(pool_rows.sample_ids[c.pool_index]), uri=str(pool_rows.uris[c.pool_index]),
            score=float(c.score), region_id=int(c.region_id), reason=c.reason,
            nearest_failure_id=(str(run_ids[c.nearest_failure_index])
                                if c.nearest_failure_index >= 0 else ""),
            distance=float(c.distance) if np.isfinite(c.distance) else 0.0, slice=c.slice,
            **_prediction(pool_rows.probabilities, c.pool_index))
            for i, c in enumerate(picks)]
        if len(candidates) < min(request.budget, exclusions.eligible):   # said, never silent
            notes.append(f"{len(candidates)} of {request.budget} candidates found")
        record = SuggestionSetRecord(
            id=new_id("sugg"), run_id=run.id, pool_id=pool.id, diagnosis_id=diagnosis.id if diagnosis else "",
            strategy=strategy, budget=request.budget, num_candidates=len(candidates), created_at=time.time(),
            name=request.name, request_id=request.request_id)
        outcome = SuggestOutcome(record, candidates, exclusions, "; ".join(notes), coverage)
        progress(0.97, "saving the suggestion set")
        self.store.save_suggestion_set(record, set_table(candidates, outcome.done_message()))
        return outcome


def _query_rows(query_ids, run_ids: np.ndarray, run_embeddings: np.ndarray, run_id: str):
    """The run rows a "similar" suggestion finds more of; every id must be one of the run's."""
    wanted = list(dict.fromkeys(query_ids))
    at = pc.index_in(pa.array(wanted, pa.string()), value_set=pa.array(run_ids, pa.string()))
    missing = [i for i, j in zip(wanted, at.to_pylist()) if j is None]
    if missing:
        raise InvalidArgument("query_ids", f"{len(missing)} of {len(wanted)} are not sample ids of run "
                              f"{run_id!r}: {', '.join(map(repr, missing[:5]))}" + (", ..." if len(missing) > 5 else ""))
    rows = at.to_numpy(zero_copy_only=False).astype(np.int64)
    return query_target(run_embeddings[rows], rows, run_ids[rows])


def check_region_ids(diagnosis: pb.Diagnosis, region_ids) -> None:
    """Each region a caller chose (request.region_ids) must be one of the diagnosis's."""
    known = [r.id for r in diagnosis.regions]
    unknown = sorted(set(region_ids) - set(known))
    if unknown:
        raise InvalidArgument("region_ids", f"{', '.join(map(str, unknown))} not among the regions of diagnosis "
                              f"{diagnosis.id!r} ({', '.join(map(str, known)) or 'it has none'})")


def chosen_regions(regions: list, region_ids) -> list:
    """The targets of the regions a caller chose (request.region_ids, checked by
    check_region_ids), without the confusions no region holds."""
    chosen = set(region_ids)
    return [r for r in regions if r.region_id in chosen and r.confusion is None]


def _prediction(probabilities: Optional[np.ndarray], row: int) -> dict:
    """The model's class and confidence for a pool row (a labeling tool's pre-annotation)."""
    if probabilities is None:
        return {"predicted_label": -1, "confidence": 0.0}
    p = probabilities[row]
    best = int(np.argmax(p))
    return {"predicted_label": best, "confidence": float(p[best])}
