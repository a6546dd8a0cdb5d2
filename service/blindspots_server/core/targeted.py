"""The targeted strategy: pool samples near the failure regions that adding labels can fix.

1. Budget (targeted_budget.py): label-noise regions get half weight, regions whose
   failures' labels do not follow their inputs a quarter, fragments of one
   failure are merged, groups share by the square root of their excess errors;
   confusions no region holds (unheld_confusions.py) are groups of their own; a
   weak diagnosis (no region to collect for, or regions holding under half of
   the failures) gives (part of) the budget to margin sampling.
2. Candidates per group: each failure's nearest pool rows (kNN via the pool
   index), over-fetched so exclusions and earlier groups' picks leave enough.
3. Candidate score = closeness to the group's failures
   + ``uncertainty_weight`` x model uncertainty (normalised entropy, when pool
   probabilities are given; 0 by default, see suggest.DEFAULT_UNCERTAINTY_WEIGHT)
   + ``slice_weight`` x [row matches the region's slice]
   + REPRESENTATIVE_WEIGHT x how many of the group's failures have the row among
   their nearest pool rows (relative to the best candidate): rows like many
   failures teach more than rows like one.
4. Diverse picks: greedy, each candidate's score damped by how close it lies to
   a sample already picked for the region (within the near-duplicate radius),
   so the picks cover the region instead of piling on its densest point.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace

import faiss
import numpy as np

from .pool_filters import predicate_mask
from .pool_index import PoolIndex, normalise
from .results import ProgressFn, SuggestionCandidate, slice_name
from .strategies import normalised_entropy, select_margin, select_random
from . import targeted_budget
from .suggest_inputs import PoolData, TargetRegion
from .targeted_budget import allocate_budget  # noqa: F401  (re-exported: callers split budgets too)
from .targeted_budget import RegionGroup, collection_groups, fallback_share, group_shares, held_share

# Candidates fetched per pick: room for the diversity step to choose from.
OVERSAMPLE = 6
MAX_K_PER_FAILURE = 512
# Below this share of allowed rows a filtered index search wastes most hits:
# search a temporary index over the allowed rows instead.
MIN_ALLOWED_SHARE = 0.25
MIN_QUERY_FAILURES = 2000


REPRESENTATIVE_WEIGHT = 0.5


@dataclass
class _Candidates:
    rows: np.ndarray          # pool rows
    distance: np.ndarray      # cosine distance to the nearest failure of the region
    nearest: np.ndarray       # position of that failure in the region's failure arrays
    hits: np.ndarray          # how many of the queried failures have the row among their neighbours


def _region_candidates(region: TargetRegion, want: int, searcher, allowed: np.ndarray,
                       taken: np.ndarray, max_k: int | None = None, fill: bool = False) -> _Candidates:
    """Nearest allowed, not-yet-taken pool rows to the region's failures (at least ``want``,
    where each failure's ``max_k`` (default MAX_K_PER_FAILURE) nearest rows hold that many).

    The search widens until it has enough, each failure has seen ``max_k`` rows or every row, or
    the failures' hits number four times the allowed rows, which near-duplicate rows can reach with
    few of them found: with ``fill`` (a caller with nothing to pass a shortfall on to) that last
    stop waits for ``want`` rows."""
    max_k = MAX_K_PER_FAILURE if max_k is None else max_k
    failures = region.failure_embeddings
    m = len(failures)
    n_allowed = int(allowed.sum())
    k = int(min(max_k, max(4, math.ceil(OVERSAMPLE * want / m))))
    while True:
        dist, ids = searcher(failures, k)
        owner = np.repeat(np.arange(m), ids.shape[1])
        dist, ids = dist.ravel(), ids.ravel()
        safe = np.maximum(ids, 0)
        ok = (ids >= 0) & allowed[safe] & ~taken[safe]
        dist, ids, owner = dist[ok], ids[ok], owner[ok]
        # Keep each row's closest failure; count the failures that found it.
        order = np.lexsort((owner, dist, ids))
        ids, dist, owner = ids[order], dist[order], owner[order]
        first = np.r_[len(ids) > 0, ids[1:] != ids[:-1]][:len(ids)]
        hits = np.diff(np.r_[np.flatnonzero(first), len(ids)])
        found = _Candidates(ids[first], dist[first], owner[first], hits)
        exhausted = k >= max_k or k >= len(allowed) or (
            k * m >= 4 * n_allowed and (not fill or len(found.rows) >= want))
        if len(found.rows) >= min(OVERSAMPLE * want, want * 2) or exhausted:
            return found
        k = min(max_k, k * 2)


EXACT_PAIRS_MAX_ROWS = 8_000


def _close_pairs(x: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row, the rows with cosine distance below ``radius`` (faiss range search):
    (lims, similarities, ids) in faiss' range-search layout. Exact up to
    ``EXACT_PAIRS_MAX_ROWS`` candidates; beyond, an inverted-file search, whose
    misses are rare because rows this close share a list (the all-pairs search
    would cost n^2 d, seconds at 25k candidates)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    if n <= EXACT_PAIRS_MAX_ROWS:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 0
        index.cp.niter = 10
        index.cp.max_points_per_centroid = 64   # a coarse partition is all the lists need
        index.train(x)
        index.nprobe = 8
    index.add(x)
    return index.range_search(x, float(1.0 - radius))


def _diverse_order(x: np.ndarray, score: np.ndarray, picks: int,
                   earlier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy picks maximising score x min(1, distance to picked / radius); returns (order, gain).

    ``earlier``: rows picked for other regions, which count as picked here too.
    """
    n = len(score)
    picks = min(picks, n)
    if picks == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    # Near-duplicate radius: the typical gap between a candidate and its closest
    # other candidate, estimated on a fixed subset to stay O(n).
    probe = np.linspace(0, n - 1, min(n, 256)).astype(np.int64)
    d = 1.0 - x[probe] @ x.T
    d[np.arange(len(probe)), probe] = np.inf
    radius = float(np.median(d.min(axis=1))) if n > 1 else 1.0
    radius = max(radius, 1e-6)
    damp = np.ones(n)
    if len(earlier):
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(earlier)
        sims, _ = flat.search(x, 1)
        damp = np.clip((1.0 - sims[:, 0].astype(np.float64)) / radius, 0.0, 1.0)
    # A pick lowers the damp of rows closer than ``radius`` only, so the pairs
    # within the radius (a range search, once, BLAS-fast) are all the greedy
    # needs: each pick updates its few close rows and pushes their new gain on a
    # heap; superseded heap entries are skipped. Same picks as re-scoring every
    # row after every pick, without the picks x rows matrix-vector products.
    lims, sims, ids = _close_pairs(x, radius)
    heap = [(-float(g), j) for j, g in enumerate(score * damp)]
    heapq.heapify(heap)
    picked = np.zeros(n, dtype=bool)
    order: list[int] = []
    gains: list[float] = []
    while len(order) < picks:
        neg, j = heapq.heappop(heap)
        if picked[j] or -neg != score[j] * damp[j]:
            continue                       # picked, or an older, higher bound
        picked[j] = True
        order.append(j)
        gains.append(-neg)
        near = ids[lims[j]:lims[j + 1]]
        lowered = np.clip((1.0 - sims[lims[j]:lims[j + 1]].astype(np.float64)) / radius, 0.0, 1.0)
        for i, d in zip(near.tolist(), lowered.tolist()):
            if not picked[i] and d < damp[i]:
                damp[i] = d
                heapq.heappush(heap, (-float(score[i] * damp[i]), i))
    return np.asarray(order), np.asarray(gains)


def select_targeted(embeddings: np.ndarray | None, probabilities: np.ndarray | None, pool: PoolData,
                    regions: list[TargetRegion], allowed: np.ndarray, budget: int,
                    index: PoolIndex | None, uncertainty_weight: float, slice_weight: float,
                    progress: ProgressFn, num_failures: int | None = None,
                    seed: int = 0) -> list[SuggestionCandidate]:
    """Ranked candidates near the failure regions; see the module doc for the recipe.

    The budget is always filled while allowed rows remain: what the regions' neighbourhoods
    cannot take follows margin sampling, or, for a pool without probabilities, a random
    sample (``seed``), each pick's reason saying so.

    ``embeddings``: the pool's unit rows, or None when this process does not hold them; then
    ``index`` (a PoolIndex or a ShardedPoolIndex) gives the few rows the ranking scores
    (candidates and picks, ``index.vectors``), as it holds them (decoded, for compressed kinds).
    """
    groups = collection_groups(regions)
    if not groups:
        if probabilities is not None:
            # Only label-noise regions: more samples like them fix nothing (relabel
            # them); the budget goes to the strongest general baseline instead.
            note = "the diagnosed regions are label noise (relabel them, don't collect); "
            return [replace(c, reason=note + c.reason)
                    for c in select_margin(probabilities, allowed, budget)]
        noise = [r for r in regions if len(r.failure_embeddings) and r.confusion is None]
        groups = [RegionGroup(r, (r.region_id,)) for r in
                  sorted(noise, key=lambda r: (-r.excess_errors, r.region_id))]
        if not groups:
            note = "no region has failures to search near, and the pool has no probabilities: "
            return [replace(c, reason=note + c.reason) for c in select_random(allowed, budget, seed)]
    searcher = _searcher(embeddings, allowed, index)
    rows_of = index.vectors if embeddings is None else embeddings.__getitem__
    uncertainty = normalised_entropy(probabilities) if probabilities is not None else None
    to_margin = int(round(budget * fallback_share(groups, num_failures))) if probabilities is not None else 0
    alloc = group_shares(groups, budget - to_margin)
    if targeted_budget.LABEL_NOISE_SHARE_TO == "margin" and probabilities is not None:
        noise = np.array([g.region.kind == "label_noise" for g in groups])
        to_margin += int(alloc[noise].sum())
        alloc[noise] = 0
    taken = np.zeros(len(allowed), dtype=bool)
    per_region: list[list[SuggestionCandidate]] = []
    carry = 0
    for n, (group, share) in enumerate(zip(groups, alloc)):
        region = group.region
        progress(0.1 + 0.8 * n / len(groups), f"selecting pool samples near region {region.region_id}")
        want = int(share) + carry
        if want == 0:
            per_region.append([])
            continue
        query = _query_failures(region, want)
        cand = _region_candidates(query, want, searcher, allowed, taken)
        picked = _pick(query, group.member_ids, cand, rows_of(cand.rows), uncertainty, pool, want,
                       uncertainty_weight, slice_weight, rows_of(np.flatnonzero(taken)))
        taken[[c.pool_index for c in picked]] = True
        carry = want - len(picked)   # a region short of candidates passes its share on
        per_region.append(picked)
    to_margin += carry
    if to_margin > 0 and probabilities is not None:
        progress(0.92, "margin sampling for the failures no region explains")
        note = (f"the regions explain {100 * held_share(groups, num_failures):.0f}% of the failures; "
                f"the rest of the budget follows margin sampling: ")
        per_region.append([replace(c, reason=note + c.reason)
                           for c in select_margin(probabilities, allowed & ~taken, to_margin)])
    elif to_margin > 0:
        # Only a share the regions' neighbourhoods could not fill gets here (no probabilities,
        # no margin share): the budget is still filled, and the reasons say how.
        note = (f"the pool rows near the regions' failures are used up ({int(taken.sum())} picked) and the "
                f"pool has no probabilities for margin sampling; the rest of the budget is a ")
        per_region.append([replace(c, reason=note + c.reason)
                           for c in select_random(allowed & ~taken, to_margin, seed)])
    progress(0.97, "ranking candidates")
    return _interleave(per_region)


# TargetRegion.kind of the rows a "similar" suggestion is asked to find more of.
QUERY_KIND = "query"
# A query row's nearest pool rows searched at most ("similar" with few query rows and a large
# budget searches deeper than a region, whose share is spread over many failures).
MAX_K_PER_QUERY = 16_384
# "similar": the query rows' mean joins them as this share of their number (at least one row):
# averaging cancels what the query rows do not share (their classes, say) and keeps what they do
# (the lighting). Chosen on the dev families, 2 seeds, 32 cases (bench/RESULTS.md#more-like-these):
# mean precision % at shares 0 / 0.1 / 0.3 / 0.6 (1.0 for 10 rows), with 5 query failures 56.8 / 59.8 /
# 60.5 / 61.3, with 10 60.7 / 63.4 / 64.5 / 62.9, with 20 63.8 / 64.7 / 65.4 / 64.5.
QUERY_MEAN_SHARE = 0.3
QUERY_MEAN = "the query rows' mean"


def query_target(embeddings: np.ndarray, indices: np.ndarray, ids: np.ndarray | None = None) -> TargetRegion:
    """The run rows a "similar" suggestion finds more of, as the one target it aims at."""
    return TargetRegion(region_id=-1, excess_errors=float(len(indices)), failure_embeddings=embeddings,
                        failure_indices=np.asarray(indices), failure_ids=ids, kind=QUERY_KIND)


def select_similar(embeddings: np.ndarray | None, probabilities: np.ndarray | None, pool: PoolData,
                   query: TargetRegion, allowed: np.ndarray, budget: int, index: PoolIndex | None,
                   uncertainty_weight: float, progress: ProgressFn) -> list[SuggestionCandidate]:
    """"More like these": the allowed pool rows nearest to the query rows, scored and
    diversified as a targeted region's picks are (closeness, rows near many query rows first,
    near-duplicates damped), each reason naming the query row it is near. Never filled up by
    another strategy: fewer than ``budget`` come back where the query rows' neighbourhoods
    (``MAX_K_PER_QUERY`` rows each) hold fewer allowed rows."""
    progress(0.1, f"searching the pool near {len(query.failure_indices)} query rows")
    searcher = _searcher(embeddings, allowed, index)
    rows_of = index.vectors if embeddings is None else embeddings.__getitem__
    q = _with_mean(_query_failures(query, budget), query)
    max_k = int(min(MAX_K_PER_QUERY, max(MAX_K_PER_FAILURE, math.ceil(OVERSAMPLE * budget / len(q.failure_indices)))))
    cand = _region_candidates(q, budget, searcher, allowed, np.zeros(len(allowed), dtype=bool), max_k, fill=True)
    uncertainty = normalised_entropy(probabilities) if probabilities is not None else None
    progress(0.6, "ranking candidates")
    return _pick(q, (-1,), cand, rows_of(cand.rows), uncertainty, pool, budget, uncertainty_weight, 0.0,
                 rows_of(np.zeros(0, dtype=np.int64)))


def _with_mean(q: TargetRegion, query: TargetRegion) -> TargetRegion:
    """The (normalised) query rows ``q`` and their mean over all of ``query``'s rows, as
    QUERY_MEAN_SHARE of their number (run row -1); one query row is its own mean."""
    n = len(query.failure_indices)
    m = max(1, round(QUERY_MEAN_SHARE * len(q.failure_indices))) if n > 1 and QUERY_MEAN_SHARE > 0 else 0
    if m == 0:
        return q
    mean = normalise(normalise(query.failure_embeddings).mean(axis=0, keepdims=True))
    return replace(q, failure_embeddings=np.vstack([q.failure_embeddings, np.repeat(mean, m, axis=0)]),
                   failure_indices=np.r_[np.asarray(q.failure_indices), np.full(m, -1)],
                   failure_ids=None if q.failure_ids is None else np.r_[np.asarray(q.failure_ids, dtype=object),
                                                                      np.full(m, QUERY_MEAN, dtype=object)])


def _query_failures(region: TargetRegion, want: int) -> TargetRegion:
    """The region with normalised failures, at most max(MIN_QUERY_FAILURES, 2 x want) of
    them (a seeded sample): a million-row test set has tens of thousands of failures
    per region, and kNN from all of them costs seconds for the same few picks."""
    m = len(region.failure_embeddings)
    cap = max(MIN_QUERY_FAILURES, 2 * want)
    keep = slice(None)
    if m > cap:
        keep = np.sort(np.random.default_rng(abs(region.region_id)).choice(m, cap, replace=False))
    ids = region.failure_ids
    return replace(region, failure_embeddings=normalise(region.failure_embeddings[keep]),
                   failure_indices=np.asarray(region.failure_indices)[keep],
                   failure_ids=None if ids is None else np.asarray(ids)[keep])


def _pick(region: TargetRegion, members: tuple[int, ...], cand: _Candidates, x: np.ndarray,
          uncertainty: np.ndarray | None, pool: PoolData, want: int,
          uncertainty_weight: float, slice_weight: float,
          earlier: np.ndarray) -> list[SuggestionCandidate]:
    if len(cand.rows) == 0:
        return []
    # Closeness relative to this region's scale: 1 at a failure, 1/e at the median distance.
    tau = max(float(np.median(cand.distance)), 1e-6)
    closeness = np.exp(-cand.distance / tau)
    score = closeness.copy()
    u = uncertainty[cand.rows] if uncertainty is not None else None
    if u is not None:
        score += uncertainty_weight * u
    in_slice = np.zeros(len(cand.rows), dtype=bool)
    if region.slice_predicates:
        in_slice = predicate_mask(pool.metadata.iloc[cand.rows], region.slice_predicates)
        score += slice_weight * in_slice
    score += REPRESENTATIVE_WEIGHT * cand.hits / max(int(cand.hits.max()), 1)
    order, gain = _diverse_order(x, score, want, earlier)
    name = slice_name(region.slice_predicates)
    which = (f"region {region.region_id}" if len(members) == 1 else
             "regions " + "+".join(map(str, members)) + " (one failure, merged)")
    near = "nearest failure"
    if region.kind == QUERY_KIND:
        head, near = f"like the {region.excess_errors:.0f} query rows", "nearest query row"
    elif region.confusion is None:
        head = (f"near failure {which} (excess {region.excess_errors:.0f} errors"
                + (f", {name})" if name else ")"))
    else:
        given, predicted = region.confusion
        head = (f"near the failures labelled {given} and predicted {predicted} that no region holds"
                f" (excess {region.excess_errors:.0f} errors)")
    if region.kind == "label_noise":
        head += " (typed label noise: relabel its test rows; collected at reduced weight)"
    elif region.labels_predictable is False and targeted_budget.UNPREDICTABLE_WEIGHT is not None:
        head += (" (its failures' labels do not follow their inputs: more like them teach little;"
                 " collected at reduced weight)")
    out = []
    for j, g in zip(order, gain):
        f = int(cand.nearest[j])
        run_row = int(region.failure_indices[f]) if len(region.failure_indices) else -1
        fid = (str(region.failure_ids[f]) if region.failure_ids is not None
               else f"row {run_row}")
        if region.kind == QUERY_KIND and run_row < 0:
            fid, near_what = QUERY_MEAN, "nearest"
        else:
            near_what = near
        parts = [head, f"{near_what} {fid} at distance {cand.distance[j]:.2f}"]
        if in_slice[j]:
            parts.append("matches the region's slice")
        if u is not None:
            parts.append(f"uncertainty {u[j]:.2f}")
        out.append(SuggestionCandidate(
            pool_index=int(cand.rows[j]), score=float(g), region_id=int(region.region_id),
            reason="; ".join(parts), nearest_failure_index=run_row,
            distance=float(cand.distance[j]), slice=name if in_slice[j] else ""))
    return out


def _interleave(per_region: list[list[SuggestionCandidate]]) -> list[SuggestionCandidate]:
    """Merge region lists so any prefix holds each region's impact-proportional share."""
    keyed = []
    for r, picks in enumerate(per_region):
        n = len(picks)
        keyed += [((i + 0.5) / n, r, i, c) for i, c in enumerate(picks)]
    keyed.sort(key=lambda t: t[:3])
    return [t[3] for t in keyed]


def _searcher(embeddings: np.ndarray | None, allowed: np.ndarray, index: PoolIndex | None):
    """search(queries, k) -> (distances, pool rows) over the pool, honouring sparsity of ``allowed``:
    few allowed rows get an index of their own, from the rows here or from an index in this process
    that holds them. Sharded or compressed, the index answers however few rows are allowed
    (_region_candidates drops the others and asks for more neighbours)."""
    n = len(allowed)
    if index is not None and allowed.sum() >= MIN_ALLOWED_SHARE * n:
        return index.search
    if embeddings is None and not getattr(index, "holds_rows", False):
        return index.search         # shards, or codes: the rows stay where the index is
    rows = np.flatnonzero(allowed)
    # Without the rows here, an index in this process that holds them gives the allowed ones.
    local = PoolIndex(index.dim if embeddings is None else embeddings.shape[1]).build(
        index.vectors(rows) if embeddings is None else embeddings[rows])

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist, ids = local.search(queries, k)
        return dist, np.where(ids >= 0, rows[np.maximum(ids, 0)], -1)
    return search
