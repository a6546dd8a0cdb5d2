"""Which metadata slices best describe a region's members (precision, recall, F1).

``RegionExplainer(...).fit(binned, members)`` runs a beam search over
conjunctions of predicates: the binned levels plus, for numeric and timestamp
columns, a range tailored to the region (its members' central values), so a
region like "price above 1.15M" is not forced onto a global quantile bin, and
for timestamps the best wrap-around window of months, weekdays and hours
("month in Nov-Feb"), so a season is not forced onto a fixed one either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .metadata_bins import BinnedMetadata
from .results import Predicate
from .time_parts import (FIRST, PERIODS, part_values, snap_to_days, spans_days, window,
                         window_value)


@dataclass
class Explanation:
    """A conjunction of predicates and how well it matches a group of rows."""

    predicates: tuple[Predicate, ...]
    support: int              # rows in the slice
    overlap: int              # rows in the slice and the group
    precision: float
    recall: float
    f1: float
    mask: np.ndarray          # bool per row
    # Predicates this one was the best of: the product, over its tailored
    # predicates, of the cuts or windows scanned to choose them (1 when none).
    choices: int = 1


class RegionExplainer:
    """Beam search for the conjunctions that best describe a group of rows.

    A longer conjunction is kept only when it beats its parent's F1 by
    ``min_gain``, so explanations stay as short as the data allows; a slice is
    kept only when it holds the region at ``min_enrichment`` times its overall share
    and has at least ``min_support`` rows (a slice of a handful of rows explains nothing).
    """

    def __init__(self, max_predicates: int = 3, beam_width: int = 10, top: int = 3,
                 min_gain: float = 0.05, min_enrichment: float = 2.0, min_support: int = 1):
        self.max_predicates = max_predicates
        self.beam_width = beam_width
        self.top = top
        self.min_gain = min_gain
        self.min_enrichment = min_enrichment
        self.min_support = min_support

    def fit(self, binned: BinnedMetadata, members: np.ndarray) -> list[Explanation]:
        """The best-F1 explanations (at most ``top``), best first; sets ``num_tested_``."""
        members = np.asarray(members, dtype=bool)
        preds, groups, matrix = self._predicate_matrix(binned, members)
        self.num_tested_ = 0
        size = int(members.sum())
        self.tested_support_ = self.tested_overlap_ = self.tested_choices_ = np.zeros(0, dtype=np.int64)
        if size == 0 or matrix.shape[1] == 0:
            self.candidates_ = []
            return []
        m = members.astype(np.float32)
        found: dict[tuple[int, ...], tuple[float, int, int]] = {}
        kept: dict[tuple[int, ...], tuple[float, np.ndarray]] = {}
        beam: list[tuple[tuple[int, ...], np.ndarray, float]] = [((), np.ones(len(members), bool), 0.0)]
        for _ in range(self.max_predicates):
            scored = []
            for chosen, mask, parent_f1 in beam:
                w = mask.astype(np.float32)
                support = w @ matrix
                overlap = (w * m) @ matrix
                f1 = 2 * overlap / (support + size)
                used = {groups[i] for i in chosen}
                for j in np.argsort(-f1)[: self.beam_width * 4]:
                    key = tuple(sorted(chosen + (int(j),)))
                    if groups[j] in used or key in found or overlap[j] == 0:
                        continue
                    self.num_tested_ += 1
                    found[key] = (float(f1[j]), int(support[j]), int(overlap[j]), self._multiplicity(key))
                    # A slice that barely concentrates the region more than the whole
                    # test set does describes nothing, however large the region.
                    enriched = overlap[j] / support[j] >= self.min_enrichment * size / len(members)
                    if enriched and support[j] >= self.min_support and f1[j] >= parent_f1 + (self.min_gain if chosen else 0.0):
                        scored.append((float(f1[j]), key, mask & matrix[:, j].astype(bool)))
            scored.sort(key=lambda t: -t[0])
            beam = [(key, mask, f1) for f1, key, mask in scored[: self.beam_width]]
            if not beam:
                break
            kept.update({key: (f1, mask) for f1, key, mask in scored})
        tested = np.array([(sup, ov, mult) for _, sup, ov, mult in found.values()],
                          dtype=np.int64).reshape(-1, 3)
        self.tested_support_, self.tested_overlap_, self.tested_choices_ = tested[:, 0], tested[:, 1], tested[:, 2]
        best = sorted(kept.items(), key=lambda kv: -kv[1][0])[: self.top]
        out = []
        for key, (f1, mask) in best:
            support, overlap = int(mask.sum()), int((mask & members).sum())
            out.append(Explanation(tuple(preds[i] for i in key), support, overlap,
                                   overlap / support, overlap / size, f1, mask, self._multiplicity(key)))
        self.candidates_ = out
        return out

    def _multiplicity(self, key: tuple[int, ...]) -> int:
        return int(np.prod([self._choices[i] for i in key], dtype=np.float64).clip(1, 2 ** 62))

    def _predicate_matrix(self, binned: BinnedMetadata, members: np.ndarray):
        """Dense 0/1 matrix (rows x predicates), the predicates, and each one's metadata column."""
        preds: list[Predicate] = []
        groups: list[str] = []
        cols: list[np.ndarray] = []
        # How many predicates each one was the best of: 1 for a fixed level, the
        # number of cuts or windows scanned for a tailored one (see fit).
        self._choices: list[int] = []
        for j, name in enumerate(binned.columns):
            if binned.search_only and binned.search_only[j]:
                continue
            codes = binned.codes[:, j]
            for c, pred in enumerate(binned.predicates[j]):
                mask = codes == c
                if mask.any():
                    preds.append(pred)
                    groups.append(pred.subject)
                    cols.append(mask)
                    self._choices.append(1)
        for name, values in binned.numbers.items():
            is_time = name in binned.timestamp_columns
            pred = self._tailored_range(name, values, members, is_time)
            if pred is not None:
                with np.errstate(invalid="ignore"):
                    mask = (values >= pred.low) & (values < pred.high)
                preds.append(pred)
                groups.append(name)
                cols.append(mask)
                self._choices.append(self.last_cuts_)
            for part in (PERIODS if is_time else ()):
                found = self._tailored_window(name, part, part_values(values, part), members)
                if found is not None and found[0] not in preds:
                    preds.append(found[0])
                    groups.append(found[0].subject)
                    cols.append(found[1])
                    self._choices.append(PERIODS[part] * (PERIODS[part] - 1))
        # Filled column by column in Fortran order: one pass, no bool copy of the whole matrix.
        matrix = np.empty((len(members), len(cols)), dtype=np.float32, order="F")
        for i, col in enumerate(cols):
            matrix[:, i] = col
        return preds, groups, matrix

    @staticmethod
    def _tailored_window(name: str, part: str, values: np.ndarray,
                         members: np.ndarray) -> tuple[Predicate, np.ndarray] | None:
        """The wrap-around window of a timestamp part (e.g. months Nov-Feb) with the best
        F1 for the members, and its row mask; None when the part does not vary.

        Exact: every start and length, from per-value counts (at most 24 x 23 windows).
        """
        period, first = PERIODS[part], FIRST[part]
        ok = ~np.isnan(values)
        size = int(members.sum())
        idx = values[ok].astype(np.int64) - first
        rows = np.bincount(idx, minlength=period).astype(np.float64)
        if size == 0 or np.count_nonzero(rows) < 2:
            return None
        inside = np.bincount(idx, weights=members[ok].astype(np.float64), minlength=period)
        # Windows as cumulative sums over the cycle laid out twice: start s, length L.
        rows2, inside2 = np.concatenate([[0], np.cumsum(np.tile(rows, 2))]), \
            np.concatenate([[0], np.cumsum(np.tile(inside, 2))])
        starts = np.arange(period)[:, None]
        ends = starts + np.arange(1, period)[None, :]
        support = rows2[ends] - rows2[starts]
        overlap = inside2[ends] - inside2[starts]
        f1 = 2 * overlap / (support + size)
        s, length = np.unravel_index(int(np.argmax(f1)), f1.shape)
        if overlap[s, length] == 0:
            return None
        chosen = window(part, int(s) + first, int(length) + 1)
        mask = np.isin(values, np.asarray(chosen, dtype=np.float64))
        return Predicate(name, part, window_value(chosen)), mask

    def _tailored_range(self, name: str, values: np.ndarray, members: np.ndarray,
                        is_time: bool = False) -> Predicate | None:
        """The one-sided range (value >= t or value < t) with the best F1 for the members.

        Exact: sort once, sweep cumulative member counts over every cut. On a
        timestamp spanning weeks the cuts fall on midnights, so the ISO date the
        slice prints is the bound it applies.
        """
        op = "time_range" if is_time else "range"
        if is_time and spans_days(values):
            values = snap_to_days(values)
        ok = ~np.isnan(values)
        size = int(members.sum())
        if ok.sum() < 2 or size == 0:
            return None
        order = np.argsort(values[ok], kind="stable")
        v, m = values[ok][order], members[ok][order].astype(np.int64)
        # Only cut between distinct values.
        cut = np.flatnonzero(np.diff(v) > 0) + 1
        if len(cut) == 0:
            return None
        self.last_cuts_ = 2 * len(cut)           # both directions of every cut were scanned
        below = np.cumsum(m)[cut - 1]                 # members with value < v[cut]
        total = len(v)
        f1_low = 2 * (m.sum() - below) / ((total - cut) + size)   # value >= v[cut]
        f1_high = 2 * below / (cut + size)                        # value < v[cut]
        if f1_low.max() >= f1_high.max():
            t = float(v[cut[int(np.argmax(f1_low))]])
            return Predicate(name, op, low=t, high=math.inf)
        t = float(v[cut[int(np.argmax(f1_high))]])
        return Predicate(name, op, low=-math.inf, high=t)


def same_cause_groups(masks: dict[int, np.ndarray], min_jaccard: float = 0.5) -> list[list[int]]:
    """Groups (two or more ids, smallest first) whose row masks overlap by Jaccard >= min_jaccard.

    Linked transitively: a cause split into three clusters is one group.
    """
    ids = sorted(masks)
    parent = {i: i for i in ids}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a_pos, a in enumerate(ids):
        for b in ids[a_pos + 1:]:
            inter = int((masks[a] & masks[b]).sum())
            union = int((masks[a] | masks[b]).sum())
            if union and inter / union >= min_jaccard:
                parent[root(b)] = root(a)
    groups: dict[int, list[int]] = {}
    for i in ids:
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
