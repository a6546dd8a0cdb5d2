"""Metadata as integer codes: one derived column per metadata column, plus, for a
timestamp, partitions of its month, weekday and hour of day; each code stands
for one Predicate.

This is the discretisation the slice search runs on; codes < 0 mean "no
predicate" (rare categorical levels folded away). The derived columns of one
subject (e.g. the month and the three-month seasons of a timestamp) overlap, so
``groups`` names each column's subject and a conjunction takes one per subject.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .results import Predicate
from .time_parts import (PERIODS, part_mask, part_values, snap_to_days, spans_days, unix_micros, window,
                         window_value)

MAX_LEVELS = 50          # beyond this, rare categorical levels get no predicate of their own

# Fixed partitions of each timestamp part, so the slice search (which needs disjoint
# levels) can name seasons and times of day: with the single values, every 3-month
# season (Dec-Feb, Jan-Mar, ...: three phases of four) and 6-hour blocks starting on
# any multiple of 3 hours. Region explanations fit the best window of any length
# instead (slice_explanations). No weekend-vs-weekdays split: a 5/7 partition hands
# SliceLine a near copy of every top slice ("... & weekday in Mon-Fri") that
# outscores it by chance; Sat and Sun are found one by one.
# Tiers: the months and weekdays of every timestamp always (as before seasons); the
# other partitions while MAX_EXTRA_TIME_COLUMNS lasts, tier by tier over the timestamp
# columns in their order. SliceLine's cost grows with the column triples (each one a
# pass over the rows): on 100k rows with four timestamps, every partition made the
# search 7x slower than months and weekdays alone; with this bound 2x.
MAX_EXTRA_TIME_COLUMNS = 8
_SEASONS = [[window("month", (11 + phase + 3 * k) % 12 + 1, 3) for k in range(4)] for phase in range(3)]
_BLOCKS = [[window("hour", phase + 6 * k, 6) for k in range(4)] for phase in (0, 3)]
TIME_PARTITIONS: list[list[tuple[str, list[tuple[int, ...]]]]] = [
    [("month", [window("month", m, 1) for m in range(1, 13)]),
     ("weekday", [window("weekday", d, 1) for d in range(7)])],
    [("month", _SEASONS[0]), ("hour", [window("hour", h, 1) for h in range(24)]), ("hour", _BLOCKS[0])],
    [("month", _SEASONS[1]), ("month", _SEASONS[2]), ("hour", _BLOCKS[1])],
]


@dataclass
class BinnedMetadata:
    """Integer codes per row and derived column, and the predicate each code means."""

    codes: np.ndarray                          # int32, rows x derived columns, -1 = no predicate
    columns: list[str]                         # derived column names
    predicates: list[list[Predicate]]          # predicates[j][code]
    numbers: dict[str, np.ndarray] = field(default_factory=dict)  # numeric view of range columns
    timestamp_columns: set[str] = field(default_factory=set)      # their numbers are unix micros
    groups: list[str] = field(default_factory=list)               # each derived column's subject
    # Columns only the slice search needs: the windows of a timestamp part beyond its
    # single months and weekdays; region explanations fit their own window instead.
    search_only: list[bool] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return int(self.codes.shape[0])

    def mask(self, column: int, code: int) -> np.ndarray:
        return self.codes[:, column] == code


def bin_metadata(metadata: pd.DataFrame, quantile_bins: int = 5) -> BinnedMetadata:
    """Discretise metadata: categorical levels, numeric quantile bins, timestamp bins/months/weekdays."""
    n = len(metadata)
    codes: list[np.ndarray] = []
    columns: list[str] = []
    predicates: list[list[Predicate]] = []
    numbers: dict[str, np.ndarray] = {}
    timestamps: set[str] = set()

    groups: list[str] = []
    search_only: list[bool] = []

    def add(name: str, col_codes: np.ndarray, preds: list[Predicate], only_search: bool = False) -> bool:
        # A column with one code describes every row: nothing to explain with it.
        present = np.unique(col_codes[col_codes >= 0])
        if len(present) < 2:
            return False
        codes.append(col_codes.astype(np.int32))
        columns.append(name)
        predicates.append(preds)
        groups.append(preds[0].subject)
        search_only.append(only_search)
        return True

    for name in metadata.columns:
        series = metadata[name]
        col = str(name)
        if pd.api.types.is_datetime64_any_dtype(series):
            micros = unix_micros(series)
            numbers[col] = micros
            timestamps.add(col)
            add(col, *_quantile_codes(col, micros, quantile_bins, time=True))
            for part, windows in TIME_PARTITIONS[0]:
                add(f"{part}({col})", *_partition_codes(col, part, part_values(micros, part), windows))
        elif pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            add(col, *_categorical_codes(col, series))
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            numbers[col] = values
            add(col, *_quantile_codes(col, values, quantile_bins))

    extra = MAX_EXTRA_TIME_COLUMNS
    for tier in TIME_PARTITIONS[1:]:
        for col in sorted(timestamps, key=list(map(str, metadata.columns)).index):
            for part, windows in tier:
                length = len(windows[0])
                label = f"{part}({col})" if length == 1 else f"{part}({col})/{length}@{windows[0][0]}"
                if extra > 0 and add(label, *_partition_codes(col, part, part_values(numbers[col], part), windows),
                                     only_search=True):
                    extra -= 1
    matrix = np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.int32)
    return BinnedMetadata(matrix, columns, predicates, numbers, timestamps, groups, search_only)


def _partition_codes(col: str, part: str, values: np.ndarray,
                     windows: list[tuple[int, ...]]) -> tuple[np.ndarray, list[Predicate]]:
    """Codes of a partition of a timestamp part into windows (-1 where the timestamp is missing)."""
    lookup = np.full(PERIODS[part] + 1, -1, dtype=np.int64)
    for code, members in enumerate(windows):
        lookup[list(members)] = code
    codes = np.where(np.isnan(values), -1, lookup[np.nan_to_num(values, nan=0).astype(np.int64)])
    return codes, [Predicate(col, part, window_value(w)) for w in windows]


def _categorical_codes(col: str, series: pd.Series) -> tuple[np.ndarray, list[Predicate]]:
    text = series.astype("object")
    missing = text.isna().to_numpy()
    counts = text[~missing].astype(str).value_counts()
    levels = sorted(counts.index[:MAX_LEVELS])
    lookup = {level: i for i, level in enumerate(levels)}
    codes = np.array([lookup.get(str(v), -1) if not m else -1 for v, m in zip(text, missing)],
                     dtype=np.int64)
    preds = [Predicate(col, "eq", level) for level in levels]
    if missing.any():
        codes[missing] = len(preds)
        preds.append(Predicate(col, "missing"))
    return codes, preds


def _quantile_codes(col: str, values: np.ndarray, bins: int,
                    time: bool = False) -> tuple[np.ndarray, list[Predicate]]:
    missing = np.isnan(values)
    present = values[~missing]
    if len(present) == 0:
        return np.full(len(values), -1), []
    cuts = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    if time and spans_days(values):
        # Cuts at midnights: the slice means what its ISO dates say.
        cuts = snap_to_days(cuts)
    cuts = np.unique(cuts)
    # Bins are [cut_i, cut_{i+1}): searchsorted 'right' puts a value equal to a cut above it.
    codes = np.searchsorted(cuts, np.where(missing, 0.0, values), side="right").astype(np.int64)
    edges = np.concatenate([[-math.inf], cuts, [math.inf]])
    preds = [Predicate(col, "time_range" if time else "range", low=float(edges[i]), high=float(edges[i + 1]))
             for i in range(len(edges) - 1)]
    if missing.any():
        codes[missing] = len(preds)
        preds.append(Predicate(col, "missing"))
    return codes, preds


def predicate_mask(pred: Predicate, metadata: pd.DataFrame) -> np.ndarray:
    """Rows of the metadata that satisfy one predicate (for explanations and tests)."""
    series = metadata[pred.column]
    if pred.op == "missing":
        return series.isna().to_numpy()
    if pred.op == "eq":
        return (series.astype("object").astype(str) == pred.value).to_numpy() & series.notna().to_numpy()
    if pred.op in PERIODS:
        return part_mask(unix_micros(series), pred.op, pred.value)
    if pd.api.types.is_datetime64_any_dtype(series):
        num = unix_micros(series)
    else:
        num = series.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (num >= pred.low) & (num < pred.high)
