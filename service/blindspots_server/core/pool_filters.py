"""Row masks over pool metadata: user filters on candidates and slice predicates.

Timestamps compare as unix microseconds (UTC); missing values never match a
filter, except ``ne`` (a missing value is "not equal" to anything).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .results import Predicate
from .time_parts import PART_OPS, part_mask, unix_micros

FILTER_OPS = ("eq", "ne", "in", "lt", "le", "gt", "ge")


@dataclass(frozen=True)
class MetadataFilterSpec:
    """One condition on a pool metadata column.

    eq / ne / in compare against ``values`` (parsed as numbers or timestamps
    when the column is numeric or a timestamp; eq / ne fall back to ``number``
    when ``values`` is empty); lt / le / gt / ge compare against ``number``.
    """

    column: str
    op: str
    values: tuple[str, ...] = ()
    number: float = math.nan


def _column(metadata: pd.DataFrame, column: str, what: str) -> pd.Series:
    if column not in metadata.columns:
        have = ", ".join(map(str, metadata.columns)) or "no metadata columns"
        raise ValueError(f"{what}: unknown metadata column {column!r} (have {have})")
    return metadata[column]


def _is_time(col: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(col)


def _unix_us(col: pd.Series) -> np.ndarray:
    """Timestamps as float unix microseconds (NaN where missing); tz-aware ones via UTC."""
    return unix_micros(col)


def _parse_time(value: str, what: str) -> float:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: cannot read {value!r} as a timestamp") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return float(ts.value // 1000)


def _numeric_view(col: pd.Series) -> np.ndarray | None:
    """Column as float64 (timestamps as unix us), or None for categorical/text columns."""
    if _is_time(col):
        return _unix_us(col)
    if pd.api.types.is_bool_dtype(col):
        return None
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    return None


def _equal_mask(col: pd.Series, values: tuple[str, ...], number: float, what: str) -> np.ndarray:
    numeric = _numeric_view(col)
    if numeric is None:
        if not values:
            raise ValueError(f"{what}: needs values for a text column")
        text = col.astype("string")
        return text.isin(list(values)).fillna(False).to_numpy(dtype=bool)
    if values:
        if _is_time(col):
            targets = [_parse_time(v, what) for v in values]
        else:
            try:
                targets = [float(v) for v in values]
            except ValueError as exc:
                raise ValueError(f"{what}: column {col.name!r} is numeric, got values {values}") from exc
    elif math.isfinite(number):
        targets = [number]
    else:
        raise ValueError(f"{what}: needs values or a number")
    return np.isin(numeric, np.asarray(targets, dtype=np.float64))


def filter_mask(metadata: pd.DataFrame, filters: list[MetadataFilterSpec]) -> np.ndarray:
    """Bool per row: True where the row satisfies every filter (all rows for no filters)."""
    mask = np.ones(len(metadata), dtype=bool)
    for i, f in enumerate(filters):
        what = f"filters[{i}]"
        if f.op not in FILTER_OPS:
            raise ValueError(f"{what}: op must be one of {FILTER_OPS}, got {f.op!r}")
        col = _column(metadata, f.column, what)
        if f.op in ("eq", "in"):
            if f.op == "in" and not f.values:
                raise ValueError(f"{what}: 'in' needs at least one value")
            mask &= _equal_mask(col, tuple(f.values), f.number, what)
        elif f.op == "ne":
            mask &= ~_equal_mask(col, tuple(f.values), f.number, what)
        else:
            numeric = _numeric_view(col)
            if numeric is None:
                raise ValueError(f"{what}: {f.op} needs a numeric or timestamp column, "
                                 f"{f.column!r} is not")
            if not math.isfinite(f.number):
                raise ValueError(f"{what}: {f.op} needs a finite number")
            with np.errstate(invalid="ignore"):
                cmp = {"lt": np.less, "le": np.less_equal, "gt": np.greater,
                       "ge": np.greater_equal}[f.op](numeric, f.number)
            mask &= cmp & ~np.isnan(numeric)
    return mask


def predicate_mask(metadata: pd.DataFrame, predicates: tuple[Predicate, ...]) -> np.ndarray:
    """Bool per row: True where the row is in the slice (all predicates hold)."""
    mask = np.ones(len(metadata), dtype=bool)
    for p in predicates:
        col = _column(metadata, p.column, "slice_predicates")
        if p.op == "eq":
            mask &= col.astype("string").eq(str(p.value)).fillna(False).to_numpy(dtype=bool)
        elif p.op in ("range", "time_range"):
            numeric = _numeric_view(col)
            if numeric is None:
                raise ValueError(f"slice_predicates: range on non-numeric column {p.column!r}")
            lo = p.low if math.isfinite(p.low) else -np.inf
            hi = p.high if math.isfinite(p.high) else np.inf
            with np.errstate(invalid="ignore"):
                mask &= (numeric >= lo) & (numeric < hi)
        elif p.op in PART_OPS:
            times = col if _is_time(col) else pd.to_datetime(col, errors="coerce")
            try:
                mask &= part_mask(_unix_us(times), p.op, p.value)
            except ValueError as exc:
                raise ValueError(f"slice_predicates: {exc}") from None
        elif p.op == "missing":
            mask &= col.isna().to_numpy(dtype=bool)
        else:
            raise ValueError(f"slice_predicates: unknown predicate op {p.op!r}")
    return mask
