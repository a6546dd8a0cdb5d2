"""Drawing rows: labels, metadata (with a timestamp) and planted-condition membership.

Metadata columns every family has: ``device``, ``site``, ``annotator``
(categorical), ``captured_at`` (timestamp over 2025, any hour), ``exposure``
(log-normal) and ``batch`` (a numeric column unrelated to anything). A
condition's cause reserves its own level of a categorical column, so the rows
it matches are the condition's rows at the condition's rarity; a conjunction
with a timestamp part (season, hours, weekdays) draws its categorical level
more often to make up for the part's share of time.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .base import SEASONS, Cause, Condition, Term

BASE_LEVELS = {"device": 5, "site": 5, "annotator": 6}
EXPOSURE_SIGMA = 0.5
YEAR_START = np.datetime64("2025-01-01T00:00:00")


# Causes, written the way a family declares them.

def category(column: str, value: str) -> Cause:
    return Cause((Term("eq", column, value),))


def with_season(column: str, value: str, season: str) -> Cause:
    return Cause((Term("eq", column, value), Term("months", "captured_at", parts=SEASONS[season])))


def with_hours(column: str, value: str, hours: tuple[int, ...]) -> Cause:
    return Cause((Term("eq", column, value), Term("hours", "captured_at", parts=hours)))


def with_weekdays(column: str, value: str, days: tuple[int, ...]) -> Cause:
    return Cause((Term("eq", column, value), Term("weekdays", "captured_at", parts=days)))


def exposure_above(rarity: float) -> Cause:
    """exposure >= its (1 - rarity) quantile: a numeric-range cause at that rarity."""
    cut = math.exp(EXPOSURE_SIGMA * stats.norm.ppf(1 - rarity))
    return Cause((Term("range", "exposure", low=round(cut, 4), high=math.inf),))


def _time_share(term: Term) -> float:
    return len(term.parts) / {"months": 12, "hours": 24, "weekdays": 7}[term.kind]


def _reserved_levels(conditions: tuple[Condition, ...]) -> dict[str, dict[str, float]]:
    """Per categorical column, each reserved level and the frequency it needs."""
    out: dict[str, dict[str, float]] = {c: {} for c in BASE_LEVELS}
    for cond in conditions:
        eqs = [t for t in cond.cause.terms if t.kind == "eq"]
        if not eqs:
            continue
        share = 1.0
        for t in cond.cause.terms:
            if t.kind in ("months", "hours", "weekdays"):
                share *= _time_share(t)
        out[eqs[0].column][eqs[0].value] = min(cond.rarity / share, 0.9)
    return out


def draw_rows(n: int, num_classes: int, conditions: tuple[Condition, ...], rng: np.random.Generator,
              gap_scale: float = 1.0) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Labels, metadata and condition index (-1 none) of ``n`` rows.

    ``gap_scale`` < 1 keeps only that share of the data-gap conditions' rows
    (a training split that under-represents them); the split is drawn larger
    first so it still has about ``n`` rows.
    """
    draw = int(n * 1.2) if gap_scale < 1.0 else n
    labels = rng.integers(0, num_classes, draw)
    columns: dict[str, np.ndarray] = {}
    for column, base in _reserved_levels(conditions).items():
        levels = [f"{column[0]}{i}" for i in range(BASE_LEVELS[column])]
        reserved = list(base)
        free = max(1.0 - sum(base.values()), 0.05)
        p = np.array([free / len(levels)] * len(levels) + [base[v] for v in reserved])
        columns[column] = rng.choice(levels + reserved, draw, p=p / p.sum())
    seconds = rng.uniform(0, 365 * 24 * 3600, draw).astype("timedelta64[s]")
    meta = pd.DataFrame({**columns,
                         "captured_at": (YEAR_START + seconds).astype("datetime64[us]"),
                         "exposure": np.round(np.exp(rng.normal(0, EXPOSURE_SIGMA, draw)), 4),
                         "batch": rng.integers(0, 1000, draw).astype(np.float64)})
    condition = np.full(draw, -1, dtype=np.int64)
    for k, cond in enumerate(conditions):
        free_rows = condition < 0
        if cond.cause.terms:
            mask = cond.cause.matches(meta)
        elif cond.kind == "class_pair":
            # Only the source class can be pushed towards the target class.
            source = cond.classes[0]
            mask = (labels == source) & (rng.random(draw) < cond.rarity * num_classes)
        else:
            mask = rng.random(draw) < cond.rarity
        condition[mask & free_rows] = k
    keep = np.ones(draw, dtype=bool)
    if gap_scale < 1.0:
        gap = np.isin(condition, [k for k, c in enumerate(conditions) if c.fixable_by_data])
        keep = ~gap | (rng.random(draw) < gap_scale)
    idx = np.flatnonzero(keep)[:n]
    return labels[idx], meta.iloc[idx].reset_index(drop=True), condition[idx]


def flip_labels(labels: np.ndarray, condition: np.ndarray, conditions: tuple[Condition, ...],
                num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Given labels: inside label-noise conditions a ``strength`` share is set to another class."""
    given = labels.copy()
    for k, cond in enumerate(conditions):
        if cond.kind != "label_noise":
            continue
        flip = (condition == k) & (rng.random(len(labels)) < cond.strength)
        given[flip] = (labels[flip] + rng.integers(1, num_classes, int(flip.sum()))) % num_classes
    return given
