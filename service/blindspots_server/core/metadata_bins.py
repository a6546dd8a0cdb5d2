"""Metadata as integer codes: one derived column per metadata column (plus month and
weekday for timestamps), each code standing for one Predicate.

This is the discretisation the slice search runs on; codes < 0 mean "no
predicate" (rare categorical levels folded away).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .results import Predicate

MAX_LEVELS = 50          # beyond this, rare categorical levels get no predicate of their own


@dataclass
class BinnedMetadata:
    """Integer codes per row and derived column, and the predicate each code means."""

    codes: np.ndarray                          # int32, rows x derived columns, -1 = no predicate
    columns: list[str]                         # derived column names
    predicates: list[list[Predicate]]          # predicates[j][code]
    numbers: dict[str, np.ndarray] = field(default_factory=dict)  # numeric view of range columns
    timestamp_columns: set[str] = field(default_factory=set)

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

    def add(name: str, col_codes: np.ndarray, preds: list[Predicate]) -> None:
        # A column with one code describes every row: nothing to explain with it.
        present = np.unique(col_codes[col_codes >= 0])
        if len(present) < 2:
            return
        codes.append(col_codes.astype(np.int32))
        columns.append(name)
        predicates.append(preds)

    for name in metadata.columns:
        series = metadata[name]
        col = str(name)
        if pd.api.types.is_datetime64_any_dtype(series):
            values = series.to_numpy(dtype="datetime64[us]")
            missing = np.isnat(values)
            micros = np.where(missing, np.nan, values.astype("int64").astype(np.float64))
            numbers[col] = micros
            timestamps.add(col)
            add(col, *_quantile_codes(col, micros, quantile_bins))
            dt = pd.DatetimeIndex(series)
            month = np.where(missing, -1, np.nan_to_num(dt.month.to_numpy(dtype=float), nan=0) - 1)
            add(f"month({col})", month.astype(np.int64),
                [Predicate(col, "month", str(m)) for m in range(1, 13)])
            weekday = np.where(missing, -1, np.nan_to_num(dt.day_of_week.to_numpy(dtype=float), nan=0))
            add(f"weekday({col})", weekday.astype(np.int64),
                [Predicate(col, "weekday", str(d)) for d in range(7)])
        elif pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            add(col, *_categorical_codes(col, series))
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            numbers[col] = values
            add(col, *_quantile_codes(col, values, quantile_bins))

    matrix = np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.int32)
    return BinnedMetadata(matrix, columns, predicates, numbers, timestamps)


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


def _quantile_codes(col: str, values: np.ndarray, bins: int) -> tuple[np.ndarray, list[Predicate]]:
    missing = np.isnan(values)
    present = values[~missing]
    if len(present) == 0:
        return np.full(len(values), -1), []
    cuts = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    # Bins are [cut_i, cut_{i+1}): searchsorted 'right' puts a value equal to a cut above it.
    codes = np.searchsorted(cuts, np.where(missing, 0.0, values), side="right").astype(np.int64)
    edges = np.concatenate([[-math.inf], cuts, [math.inf]])
    preds = [Predicate(col, "range", low=float(edges[i]), high=float(edges[i + 1]))
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
    if pred.op in ("month", "weekday"):
        dt = pd.DatetimeIndex(series)
        part = dt.month if pred.op == "month" else dt.day_of_week
        return (part.to_numpy(dtype=float) == float(pred.value))
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.to_numpy(dtype="datetime64[us]")
        num = np.where(np.isnat(values), np.nan, values.astype("int64").astype(np.float64))
    else:
        num = series.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (num >= pred.low) & (num < pred.high)
