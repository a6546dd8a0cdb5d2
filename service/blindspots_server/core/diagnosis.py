"""Diagnosis: where the model fails (regions), why (slices), and whether to relabel or collect.

``Diagnoser(...).fit(embeddings, labels, probabilities, metadata)`` composes the
findings of the small modules next to it (failures, failure_clusters,
label_neighbourhoods, slice_finder, slice_explanations, region_typing) into one
DiagnosisResult.

Candidate regions come from three places, and one rule tests them all:
clusters of half the failures (split by class where two confusions share a
cluster), rows labelled a that sit among rows labelled b (one candidate per
frequent pair), and the significant metadata slices (which merge the clusters
lying inside them, grow them to the slice's other rows, or become regions
where no cluster formed). A region's membership never depends on a held-out
row's own outcome, so its error rate over the held-out rows is an unbiased
test, corrected together with every slice and explanation tried.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

from .class_metrics import class_stats
from .failure_clusters import FailureClusterer
from .failures import FAILURE_DEFINITIONS, Outcomes, model_outcomes
from .label_neighbourhoods import disagreement_pairs, neighbourhood_label
from .metadata_bins import BinnedMetadata, bin_metadata
from .pool_filters import predicate_mask
from .region_typing import RegionTyper
from .results import (Confusion, DiagnosisResult, Example, FailureRegion, Interval, ProgressFn,
                      SliceStat, no_progress)
from .significance import (benjamini_hochberg, enrichment_p_values, excess_error_p_values, interval,
                           wilson_interval)
from .slice_explanations import Explanation, RegionExplainer, same_cause_groups
from .slice_finder import SliceFinder
from .unheld_confusions import unheld_confusions

NUM_CONFUSIONS = 5
NUM_TYPICAL_FAILURES = 5
MIN_EXPLANATION_SUPPORT = 10
GROW_MIN_LIFT = 2.0          # a region grows to its cause's rows where clustered failures are this dense


class Diagnoser:
    """Finds failure regions and high-error slices of one model on one test set.

    None parameters are scaled to the data size at fit time; ``result_.params``
    holds the values actually used.
    """

    def __init__(self, failure_definition: str = "mispredicted", top_loss_quantile: float = 0.1,
                 min_cluster_size: int | None = None, min_samples: int | None = None,
                 reduce_to: int | None = None, max_regions: int = 20, fdr_alpha: float = 0.05,
                 max_slice_predicates: int = 3, min_slice_support: int | None = None,
                 sliceline_alpha: float = 0.95, top_slices: int = 10, quantile_bins: int = 5,
                 grow_to_cause: bool = True, grow_alpha: float = 0.01, slice_regions: bool = True,
                 pair_regions: bool = True, split_classes: bool = True, split_by_cause: bool = True,
                 seed: int = 0, compute: Optional[Any] = None):
        self.grow_to_cause = grow_to_cause
        self.slice_regions = slice_regions
        self.pair_regions = pair_regions
        self.split_classes = split_classes
        self.split_by_cause = split_by_cause
        self.grow_alpha = grow_alpha
        self.failure_definition = failure_definition
        self.top_loss_quantile = top_loss_quantile
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.reduce_to = reduce_to
        self.max_regions = max_regions
        self.fdr_alpha = fdr_alpha
        self.max_slice_predicates = max_slice_predicates
        self.min_slice_support = min_slice_support
        self.sliceline_alpha = sliceline_alpha
        self.top_slices = top_slices
        self.quantile_bins = quantile_bins
        self.seed = seed
        self.compute = compute      # where row-level steps run (core/parallel.py); None: here

    def fit(self, embeddings: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
            metadata: pd.DataFrame | None = None, sample_ids: np.ndarray | None = None,
            uris: np.ndarray | None = None, progress: ProgressFn | None = None) -> DiagnosisResult:
        """Diagnose one test set; returns (and stores in ``result_``) a DiagnosisResult."""
        progress = progress or no_progress
        self._check_params()
        embeddings, labels, probabilities, metadata, sample_ids, uris = _validated(
            embeddings, labels, probabilities, metadata, sample_ids, uris)
        n = len(labels)
        progress(0.0, "scoring predictions")
        outcomes = model_outcomes(labels, probabilities, self.failure_definition,
                                  self.top_loss_quantile)
        failed = outcomes.failed
        num_failures = int(failed.sum())
        baseline = num_failures / n

        progress(0.05, "clustering failures")
        clusterer = FailureClusterer(self.min_cluster_size, self.min_samples, self.reduce_to,
                                     seed=self.seed, compute=self.compute)
        clusters = clusterer.fit(embeddings, failed, labels,
                                 progress=lambda f, stage: progress(0.05 + 0.4 * f, stage))
        self.clusters_ = clusters          # the space clustering ran in draws the report's map
        progress(0.45, "testing regions")
        space = clusters.local if clusters.local is not None else clusters.reduced
        region_of_sample = clusters.region_of_sample.copy()
        num = clusters.num_regions
        # The failures the clusters were made from: the only outcomes that may decide a region's rows.
        clustered = failed & ~clusters.held_out
        if self.split_classes:
            num = _split_by_class(region_of_sample, num, labels, clustered, clusters.params["min_cluster_size"])
        if self.pair_regions and clustered.any():
            num = self._add_pair_regions(region_of_sample, num, clusters, labels, clustered)
        cand_support, cand_failures, region_p, excess = _region_tests(
            region_of_sample, failed, clusters.held_out, baseline, num)

        progress(0.5, "searching slices")
        binned = bin_metadata(metadata, self.quantile_bins) if metadata is not None else None
        min_support = int(self.min_slice_support or max(10, round(0.01 * n)))
        min_support_failures = max(MIN_EXPLANATION_SUPPORT, clusters.params["min_cluster_size"])
        finder = SliceFinder(self.sliceline_alpha, self.top_slices, self.max_slice_predicates,
                             min_support)
        if binned is not None and binned.codes.shape[1] > 0:
            finder.fit(binned.codes, failed.astype(np.float64),
                       progress=lambda f, stage: progress(0.5 + 0.15 * f, stage), groups=binned.groups)
        else:
            finder.fit(np.zeros((n, 0), dtype=np.int64), failed.astype(np.float64))
        slice_p = excess_error_p_values(finder.evaluated_errors_, finder.evaluated_support_, baseline)

        # Only regions that could survive correction get explained; each explanation
        # tried is a hypothesis (is the region enriched in this slice?) in the same family.
        progress(0.65, "explaining regions")
        explained: dict[int, tuple[list[Explanation], np.ndarray]] = {}
        expl_p_parts = []
        candidates = np.flatnonzero((region_p <= self.fdr_alpha) & (excess > 0))
        can_explain = binned is not None and binned.codes.shape[1] > 0
        for i, c in enumerate(candidates if can_explain else []):
            progress(0.65 + 0.15 * i / max(len(candidates), 1), "explaining regions")
            self._explain_into(binned, region_of_sample, int(c), explained, expl_p_parts)
        # One cause often shows as several clusters (one per class it confuses):
        # candidates whose best explanations pick out the same rows become one region.
        for group in same_cause_groups({c: f[0].mask for c, (f, _) in explained.items() if f}):
            head = group[0]
            for other in group[1:]:
                region_of_sample[region_of_sample == other] = head
                del explained[other]
            self._explain_into(binned, region_of_sample, head, explained, expl_p_parts)
        if self.grow_to_cause:
            _grow_to_causes(region_of_sample, explained, clustered, self.grow_alpha)
        cand_support, cand_failures, region_p, excess = _region_tests(
            region_of_sample, failed, clusters.held_out, baseline, num)
        if self.slice_regions and can_explain:
            num = self._follow_slices(finder, binned, metadata, failed, baseline, clustered,
                                      region_of_sample, num, region_p, excess, slice_p, expl_p_parts,
                                      explained, min_support_failures)
            cand_support, cand_failures, region_p, excess = _region_tests(
                region_of_sample, failed, clusters.held_out, baseline, num)
        if self.split_by_cause and can_explain:
            live = np.flatnonzero((region_p <= self.fdr_alpha) & (excess > 0))
            num = self._split_by_explanation(binned, region_of_sample, num, live, explained, expl_p_parts,
                                             clustered, clusters.params["min_cluster_size"])
            cand_support, cand_failures, region_p, excess = _region_tests(
                region_of_sample, failed, clusters.held_out, baseline, num)

        p_all = np.concatenate([region_p, slice_p, *expl_p_parts])
        q_of = _q_lookup(p_all)
        region_q = q_of(region_p)
        keep = np.flatnonzero((region_q <= self.fdr_alpha) & (excess > 0))
        keep = keep[np.argsort(-excess[keep], kind="stable")][: self.max_regions]

        slices = self._global_slices(finder, binned, failed, baseline, q_of)

        progress(0.8, "typing regions")
        typer = RegionTyper(seed=self.seed)
        types = typer.fit(space, labels, outcomes.predicted, outcomes.confidence, failed,
                          region_of_sample, [int(c) for c in keep])
        regions: list[FailureRegion] = []
        ranked = np.full(n, -1, dtype=np.int64)
        for rank, c in enumerate(keep):
            members = region_of_sample == c
            ranked[members] = rank
            lo, hi = wilson_interval(cand_failures[c], cand_support[c])
            rtype = types[int(c)]
            found, p_found = explained.get(int(c), ([], np.zeros(0)))
            regions.append(FailureRegion(
                region_id=rank, support=int(cand_support[c]), failures=int(cand_failures[c]),
                error_rate=float(cand_failures[c] / cand_support[c]), ci=Interval(float(lo), float(hi)),
                lift=_lift(cand_failures[c] / cand_support[c], baseline), excess_errors=float(excess[c]),
                p_value=float(region_p[c]), q_value=float(region_q[c]),
                explanations=self._explanations(found, p_found, failed, baseline, q_of, members),
                confusions=_confusions(labels, outcomes.predicted, members & failed),
                typical_failures=_typical_failures(space, members & failed, outcomes,
                                                   labels, sample_ids, uris),
                mean_failure_confidence=float(outcomes.confidence[members & failed].mean()),
                kind=rtype.kind, evidence=rtype.evidence))
        progress(1.0, "done")
        params = {**self._used_params(), **clusters.params, "min_slice_support": min_support}
        self.result_ = DiagnosisResult(
            num_samples=n, num_failures=num_failures, baseline_error_rate=baseline,
            baseline_ci=interval(num_failures, n), regions=regions, slices=slices,
            num_hypotheses_tested=int(len(p_all)), num_regions_tested=int(len(region_p)),
            fdr_alpha=self.fdr_alpha, region_of_sample=ranked, failed=failed, params=params,
            unheld_confusions=unheld_confusions(labels, outcomes.predicted, failed, ranked,
                                                probabilities.shape[1]),
            classes=class_stats(labels, outcomes.predicted, failed, probabilities.shape[1]))
        return self.result_

    def _follow_slices(self, finder, binned, metadata, failed, baseline, clustered, region_of_sample, num,
                       region_p, excess, slice_p, expl_p_parts, explained, min_failures) -> int:
        """Let the significant slices of the test set merge, grow and add regions (in place).

        For each slice that survives the correction, best first: regions that lie
        mostly inside it are one cause seen as several clusters, so they merge;
        a region inside it grows to its rows that no region holds (when the
        clustered failures are dense there, as in :func:`_grow_to_causes`); a
        slice whose failures no region holds becomes a region of its own, since
        a cause with few failures, or failures spread over the embedding, shows
        in the metadata even when no cluster forms.
        """
        q_pre = _q_lookup(np.concatenate([region_p, slice_p, *expl_p_parts]))
        live = set(np.flatnonzero((region_p <= self.fdr_alpha) & (excess > 0)).tolist())
        for stat in self._global_slices(finder, binned, failed, baseline, q_pre):
            rows = predicate_mask(metadata, stat.predicates)
            fails = rows & failed
            inside = []
            for c in sorted(live):
                mine = (region_of_sample == c) & failed
                if (mine & rows).sum() >= max(1, 0.5 * mine.sum()):
                    inside.append(c)
            if inside:
                head = inside[0]
                for other in inside[1:]:
                    region_of_sample[region_of_sample == other] = head
                    live.discard(other)
                    explained.pop(other, None)
                add = rows & (region_of_sample == -1)
                if _dense(add, clustered, self.grow_alpha):
                    region_of_sample[add] = head
                if len(inside) > 1 or head not in explained:
                    self._explain_into(binned, region_of_sample, head, explained, expl_p_parts)
                continue
            add = rows & (region_of_sample == -1)
            if int((fails & (region_of_sample >= 0)).sum()) > 0.5 * int(fails.sum()) or \
                    int((add & failed).sum()) < min_failures:
                continue
            region_of_sample[add] = num
            live.add(num)
            self._explain_into(binned, region_of_sample, num, explained, expl_p_parts)
            num += 1
        return num

    def _split_by_explanation(self, binned, region_of_sample, num, live, explained, expl_p_parts,
                              clustered, min_size) -> int:
        """Split a region in two where its explanation is a cause of its own and holds only part of it.

        Two conditions that sit close in the embedding share a cluster; when one
        of them has a metadata cause the region's explanation names it, and its
        failures concentrate there (the clustered failures are dense in the
        explaining slice, as in :func:`_dense`). The region's rows outside the
        slice then become a region of their own when they hold at least
        ``min_size`` clustered failures and a third of the region's.
        """
        for c in live:
            found = explained.get(int(c), ([], None))[0]
            if not found:
                continue
            rows = region_of_sample == c
            inside, outside = rows & found[0].mask, rows & ~found[0].mask
            n_in, n_out = int((inside & clustered).sum()), int((outside & clustered).sum())
            if n_in < min_size or n_out < max(min_size, (n_in + n_out) / 3) or \
                    not _dense(found[0].mask, clustered, self.grow_alpha):
                continue
            region_of_sample[outside] = num
            for r in (int(c), num):
                self._explain_into(binned, region_of_sample, r, explained, expl_p_parts)
            num += 1
        return num

    def _add_pair_regions(self, region_of_sample: np.ndarray, num: int, clusters, labels: np.ndarray,
                          clustered: np.ndarray) -> int:
        """Candidate regions of rows labelled a among rows labelled b, one per frequent (a, b) pair.

        Pairs are chosen by how many clustered failures they hold (at least
        a cluster's minimum size); their rows that no cluster holds join.
        """
        space = clusters.local if clusters.local is not None else clusters.reduced
        mcs = clusters.params["min_cluster_size"]
        # Pairs are chosen from the clustered failures' neighbourhoods; only rows with
        # a chosen pair's given label can join, so only theirs are searched.
        said = neighbourhood_label(space, labels, clustered, seed=self.seed, compute=self.compute)
        sources = [a for a, _, _ in disagreement_pairs(labels, said, clustered, mcs)]
        if not sources:
            return num
        said = neighbourhood_label(space, labels, np.isin(labels, sources), seed=self.seed, compute=self.compute)
        for _, _, rows in disagreement_pairs(labels, said, clustered, mcs):
            add = rows & (region_of_sample == -1)
            # A cluster already holding most of the pair's clustered failures takes its other rows.
            held = region_of_sample[rows & clustered & (region_of_sample >= 0)]
            if len(held) and np.bincount(held).max() >= 0.5 * int((rows & clustered).sum()):
                region_of_sample[add] = int(np.bincount(held).argmax())
            elif int((add & clustered).sum()) >= mcs:
                region_of_sample[add] = num
                num += 1
        return num

    def _explain_into(self, binned: BinnedMetadata, region_of_sample: np.ndarray, region: int,
                      explained: dict, expl_p_parts: list) -> None:
        """(Re-)explain one region: its explanations go into ``explained``, every slice tried into the family."""
        found, p_found, p_tested = self._explain(binned, region_of_sample == region)
        explained[region] = (found, p_found)
        expl_p_parts.append(p_tested)

    def _explain(self, binned: BinnedMetadata, members: np.ndarray):
        """A region's explanations, their enrichment p-values, and those of every slice tried."""
        n = len(members)
        size = int(members.sum())
        # Support floor: a slice holding a tenth of the region or less explains little of it.
        explainer = RegionExplainer(max_predicates=self.max_slice_predicates,
                                    min_support=max(MIN_EXPLANATION_SUPPORT, int(np.ceil(0.1 * size))))
        found = explainer.fit(binned, members)
        # A tailored cut is the best of every cut scanned: its p-value is Bonferroni-corrected
        # for that choice before it joins the family (otherwise it is optimistic).
        p_tested = np.minimum(1.0, explainer.tested_choices_ * enrichment_p_values(
            explainer.tested_overlap_, explainer.tested_support_, size, n))
        p_found = np.minimum(1.0, np.array([e.choices for e in found], dtype=np.float64) * enrichment_p_values(
            np.array([e.overlap for e in found]), np.array([e.support for e in found]), size, n))
        return found, p_found, p_tested

    def _global_slices(self, finder: SliceFinder, binned: BinnedMetadata | None, failed: np.ndarray,
                       baseline: float, q_of) -> list[SliceStat]:
        """SliceLine's top slices that survive the correction, best score first.

        A slice that only adds predicates to another reported slice is kept when its
        error rate is clearly higher (the two Wilson intervals do not overlap):
        a season or an hour block cut out of a failing slice ("... & hour(t) in
        [12:00, 18:00)") otherwise ranks by chance next to the slice it came from.
        """
        out = []
        for found in finder.top_slices_:
            preds = tuple(binned.predicates[j][c] for j, c in found.items)
            stat = _slice_stat(preds, found.support, int(round(found.errors)), baseline)
            stat.q_value = float(q_of(np.array([stat.p_value]))[0])
            stat.score = found.score
            if stat.q_value <= self.fdr_alpha:
                out.append(stat)
        return [s for s in out if not any(set(p.predicates) < set(s.predicates) and s.ci.low <= p.ci.high
                                          for p in out)]

    def _explanations(self, found: list[Explanation], p_found: np.ndarray, failed: np.ndarray,
                      baseline: float, q_of, members: np.ndarray) -> list[SliceStat]:
        """A region's explaining slices that survive the correction, in the order the
        search ranked them (best F1 when the region was explained).

        Error statistics are the slice's over the whole test set; p_value is the
        enrichment test (is the region over-represented in the slice?), made on the
        region's rows when it was explained. Precision, recall and F1 describe the
        region as reported: it may have grown into its top slice since.
        """
        out = []
        q_found = q_of(p_found) if len(p_found) else p_found
        size = int(members.sum())
        for e, p, q in zip(found, p_found, q_found):
            if q > self.fdr_alpha:
                continue
            stat = _slice_stat(e.predicates, e.support, int((failed & e.mask).sum()), baseline)
            stat.p_value, stat.q_value = float(p), float(q)
            overlap = int((e.mask & members).sum())
            stat.precision = overlap / e.support if e.support else 0.0
            stat.recall = overlap / size if size else 0.0
            stat.f1 = 2 * overlap / (e.support + size) if e.support + size else 0.0
            out.append(stat)
        return out

    def _check_params(self) -> None:
        if self.failure_definition not in FAILURE_DEFINITIONS:
            raise ValueError(f"failure_definition must be one of {FAILURE_DEFINITIONS}, "
                             f"got {self.failure_definition!r}")
        if not 0 < self.fdr_alpha < 1:
            raise ValueError(f"fdr_alpha must be in (0, 1), got {self.fdr_alpha}")
        if not 0 < self.sliceline_alpha <= 1:
            raise ValueError(f"sliceline_alpha must be in (0, 1], got {self.sliceline_alpha}")
        for name in ("max_regions", "max_slice_predicates", "top_slices", "quantile_bins"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def _used_params(self) -> dict:
        return {"failure_definition": self.failure_definition,
                "top_loss_quantile": float(self.top_loss_quantile),
                "max_regions": int(self.max_regions), "fdr_alpha": float(self.fdr_alpha),
                "max_slice_predicates": int(self.max_slice_predicates),
                "sliceline_alpha": float(self.sliceline_alpha), "top_slices": int(self.top_slices),
                "quantile_bins": int(self.quantile_bins), "seed": int(self.seed)}


def _split_by_class(region_of_sample: np.ndarray, num: int, labels: np.ndarray, clustered: np.ndarray,
                    min_size: int) -> int:
    """Split a region whose clustered failures come from a few classes into one region per class (in place).

    Two confusions ("4s drawn like 9s", "1s drawn like 7s") look alike once the
    class directions are projected out and share one cluster. A class is split
    off when it holds at least ``min_size`` of the cluster's clustered failures,
    and a quarter of them and twice a class's even share at least (so a binary
    task is never split); what is left stays one region when it is still big
    enough, and joins the largest split otherwise. Membership follows the given label, never the
    outcome, so the held-out test stays unbiased.
    """
    classes = int(labels.max()) + 1
    for c in range(num):
        rows = region_of_sample == c
        counts = np.bincount(labels[rows & clustered], minlength=classes)
        total = counts.sum()
        if total == 0:
            continue
        share = counts / total
        split = np.flatnonzero((counts >= min_size) & (share >= max(0.25, 2.0 / classes)))
        rest = total - counts[split].sum()
        if len(split) == 0 or len(split) == 1 and rest < min_size:
            continue
        order = split[np.argsort(-counts[split], kind="stable")]
        for k, a in enumerate(order):
            if k == 0 and rest < min_size:
                continue            # the largest class keeps the region and what is left
            region_of_sample[rows & (labels == a)] = num
            num += 1
    return num


def _grow_to_causes(region_of_sample: np.ndarray, explained: dict, clustered: np.ndarray,
                    alpha: float) -> None:
    """Extend each explained region to the rows of its top explanation that no region holds (in place).

    A cluster holds the part of a cause's rows that sit densely together in
    the embedding; when its explanation names the cause ("device = cam7"), the
    cause's other rows fail the same way but were left out. They join when the
    clustered failures are over-represented among them (one-sided binomial
    test at ``alpha`` against the clustered failures' share of all rows).
    Only the clustered failures decide, never the outcome of a held-out row,
    so the held-out test of the grown region stays unbiased.
    """
    for c, (found, _) in sorted(explained.items()):
        if not found:
            continue
        add = found[0].mask & (region_of_sample == -1)
        if _dense(add, clustered, alpha):
            region_of_sample[add] = c


def _dense(rows: np.ndarray, clustered: np.ndarray, alpha: float) -> bool:
    """Whether the clustered failures are over-represented among the rows (binomial test, lift >= GROW_MIN_LIFT)."""
    size = int(rows.sum())
    if size == 0:
        return False
    share = clustered.sum() / max(len(rows), 1)
    hits = int((rows & clustered).sum())
    p = excess_error_p_values(np.array([hits]), np.array([size]), share)[0]
    return bool(p <= alpha and hits >= GROW_MIN_LIFT * share * size)


def _region_tests(region_of_sample: np.ndarray, failed: np.ndarray, held: np.ndarray | None,
                  baseline: float, num_regions: int):
    """Rows and failures per region, the held-out test's p-value, and the excess errors.

    The test counts held-out rows only: the clustered failures made the regions,
    so counting them would inflate every region's error rate (on data with no
    failure pattern a cluster of failures is all failures).
    """
    support, failures = _region_counts(region_of_sample, failed, num_regions)
    if held is None:
        held = np.ones(len(failed), dtype=bool)
    held_support, held_failures = _region_counts(region_of_sample[held], failed[held], num_regions)
    held_baseline = float(failed[held].mean()) if held.any() else baseline
    p = excess_error_p_values(held_failures, held_support, held_baseline)
    excess = failures - support * baseline
    excess = np.where(held_failures > held_support * held_baseline, excess, 0.0)
    return support, failures, p, excess


def _region_counts(region_of_sample: np.ndarray, failed: np.ndarray,
                   num_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and failures per region."""
    inside = region_of_sample >= 0
    return (np.bincount(region_of_sample[inside], minlength=num_regions),
            np.bincount(region_of_sample[inside & failed], minlength=num_regions))


def _q_lookup(p_all: np.ndarray):
    """BH q-value of any p-value from the family p_all (equal p-values share a q-value)."""
    q_all = benjamini_hochberg(p_all)
    order = np.argsort(p_all, kind="stable")
    p_sorted, q_sorted = p_all[order], q_all[order]

    def q_of(p: np.ndarray) -> np.ndarray:
        if len(p_sorted) == 0:
            return np.ones(len(p))
        pos = np.clip(np.searchsorted(p_sorted, p, side="left"), 0, len(p_sorted) - 1)
        return q_sorted[pos]
    return q_of


def _slice_stat(preds, support: int, failures: int, baseline: float) -> SliceStat:
    lo, hi = wilson_interval(failures, support)
    rate = failures / support
    return SliceStat(predicates=tuple(preds), support=int(support), failures=int(failures),
                     error_rate=float(rate), ci=Interval(float(lo), float(hi)),
                     lift=_lift(rate, baseline),
                     p_value=float(excess_error_p_values(np.array([failures]), np.array([support]),
                                                         baseline)[0]))


def _lift(rate: float, baseline: float) -> float:
    return float(rate / baseline) if baseline > 0 else math.inf


def _confusions(labels: np.ndarray, predicted: np.ndarray, rows: np.ndarray) -> list[Confusion]:
    """Most frequent (given label -> prediction) pairs among the rows."""
    pairs = pd.Series(list(zip(labels[rows].tolist(), predicted[rows].tolist()))).value_counts()
    return [Confusion(int(t), int(p), int(c)) for (t, p), c in pairs.head(NUM_CONFUSIONS).items()]


def _typical_failures(reduced: np.ndarray, rows: np.ndarray, outcomes: Outcomes, labels: np.ndarray,
                      sample_ids: np.ndarray, uris: np.ndarray) -> list[Example]:
    """The region's failures closest to the centre of its failures, medoid first."""
    idx = np.flatnonzero(rows)
    if len(idx) == 0:
        return []
    pts = reduced[idx]
    centre = pts.mean(axis=0)
    order = idx[np.argsort(((pts - centre) ** 2).sum(axis=1), kind="stable")][:NUM_TYPICAL_FAILURES]
    return [Example(index=int(i), sample_id=str(sample_ids[i]), uri=str(uris[i]), label=int(labels[i]),
                    predicted=int(outcomes.predicted[i]), confidence=float(outcomes.confidence[i]),
                    failed=bool(outcomes.failed[i])) for i in order]


def _validated(embeddings, labels, probabilities, metadata, sample_ids, uris):
    """Arrays checked once at the boundary; errors name the argument."""
    embeddings = np.asarray(embeddings)
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (rows x dims), got shape {embeddings.shape}")
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (rows x classes), got shape {probabilities.shape}")
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    n = len(labels)
    if len(embeddings) != n or len(probabilities) != n:
        raise ValueError(f"embeddings has {len(embeddings)} rows, probabilities has "
                         f"{len(probabilities)} rows but labels has {n}")
    if n == 0:
        raise ValueError("labels is empty: nothing to diagnose")
    if embeddings.shape[1] == 0:
        raise ValueError("embeddings has 0 columns")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    num_classes = probabilities.shape[1]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) (probabilities has {num_classes} "
                         f"columns), got range [{labels.min()}, {labels.max()}]")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contains NaN or infinite values")
    if not np.isfinite(probabilities).all():
        raise ValueError("probabilities contains NaN or infinite values")
    if metadata is not None:
        if not isinstance(metadata, pd.DataFrame):
            raise ValueError(f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if len(metadata) != n:
            raise ValueError(f"metadata has {len(metadata)} rows but labels has {n}")
        for name in metadata.columns:      # as the server refuses them: no slice can name an infinity
            col = metadata[name]
            if (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
                    and np.isinf(col.to_numpy(dtype=np.float64, na_value=np.nan)).any()):
                raise ValueError(f"metadata column {name!r} has infinite values")
        metadata = metadata.reset_index(drop=True)
    if sample_ids is None:
        sample_ids = np.array([str(i) for i in range(n)])
    sample_ids = np.asarray(sample_ids)
    if len(sample_ids) != n:
        raise ValueError(f"sample_ids has {len(sample_ids)} entries but labels has {n}")
    if uris is None:
        uris = np.full(n, "", dtype=object)
    uris = np.asarray(uris)
    if len(uris) != n:
        raise ValueError(f"uris has {len(uris)} entries but labels has {n}")
    return embeddings, labels, probabilities, metadata, sample_ids, uris
