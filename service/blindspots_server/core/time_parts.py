"""Timestamps in the slice language: cyclic parts (month, weekday, hour of day), sets
of them written as wrap-around windows ("Dec-Feb"), and ISO dates for people.

A part predicate's value is a comma-separated set of part values: months 1-12,
weekdays 0=Mon..6=Sun, hours 0-23 (of the stored UTC time). Timestamps compare
as unix microseconds (UTC); a time range prints its bounds as ISO dates, or ISO
date-times when a bound is not a midnight.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

PERIODS = {"month": 12, "weekday": 7, "hour": 24}
FIRST = {"month": 1, "weekday": 0, "hour": 0}      # the smallest value of each part
PART_OPS = tuple(PERIODS)
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_US = 86_400_000_000
_EPOCH = dt.datetime(1970, 1, 1)


def unix_micros(series: pd.Series) -> np.ndarray:
    """Timestamps as float unix microseconds (NaN where missing); tz-aware ones via UTC."""
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    values = series.astype("datetime64[us]").to_numpy()
    out = values.astype(np.int64).astype(np.float64)
    out[np.isnat(values)] = np.nan
    return out


def part_values(micros: np.ndarray, part: str) -> np.ndarray:
    """The part (month 1-12, weekday 0-6, hour 0-23) of each timestamp; NaN where missing."""
    ok = ~np.isnan(micros)
    out = np.full(len(micros), np.nan)
    us = micros[ok].astype(np.int64)
    if part == "hour":
        out[ok] = (us // 3_600_000_000) % 24
    elif part == "weekday":
        out[ok] = (us // DAY_US + 3) % 7          # 1970-01-01 was a Thursday
    elif part == "month":
        out[ok] = us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    else:
        raise ValueError(f"unknown timestamp part {part!r} (use one of {PART_OPS})")
    return out


def parse_part_set(part: str, value: str) -> tuple[int, ...]:
    """The set a part predicate's value names ("12,1,2"); raises ValueError saying why."""
    period, first = PERIODS[part], FIRST[part]
    try:
        values = tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise ValueError(f"{part} value must be comma-separated integers, got {value!r}") from None
    bad = [v for v in values if not first <= v < first + period]
    if bad:
        raise ValueError(f"{part} values must lie in [{first}, {first + period - 1}], got {bad}")
    return values


def window(part: str, start: int, length: int) -> tuple[int, ...]:
    """The ``length`` part values from ``start`` on, wrapping around (month 12, 1, 2)."""
    period, first = PERIODS[part], FIRST[part]
    return tuple((start - first + i) % period + first for i in range(length))


def window_value(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def part_mask(micros: np.ndarray, part: str, value: str) -> np.ndarray:
    """Rows whose timestamp's part is in the set ``value`` names (missing: never)."""
    wanted = np.asarray(parse_part_set(part, value), dtype=np.float64)
    return np.isin(part_values(micros, part), wanted)


def _runs(part: str, values: tuple[int, ...]) -> list[tuple[int, int]]:
    """The set as maximal cyclic runs (start, length), in calendar order of their starts."""
    period, first = PERIODS[part], FIRST[part]
    present = np.zeros(period, dtype=bool)
    present[[v - first for v in values]] = True
    if present.all():
        return [(first, period)]
    runs = []
    for i in range(period):
        if present[i] and not present[i - 1]:          # a run starts here (i - 1 wraps to the end)
            length = 1
            while present[(i + length) % period]:
                length += 1
            runs.append((i + first, length))
    return sorted(runs)


def _part_name(part: str, v: int) -> str:
    if part == "month":
        return MONTH_NAMES[v - 1]
    if part == "weekday":
        return WEEKDAY_NAMES[v]
    return f"{v:02d}:00"


def _run_text(part: str, start: int, length: int) -> str:
    if part == "hour":
        end = (start + length) % 24
        return f"[{start:02d}:00, {end:02d}:00)" if length < 24 else "[00:00, 24:00)"
    last = window(part, start, length)[-1]
    return _part_name(part, start) if length == 1 else f"{_part_name(part, start)}-{_part_name(part, last)}"


def part_text(column: str, part: str, value: str) -> str:
    """E.g. "month(listed_at) in Dec-Feb", "weekday(t)=Sat", "hour(t) in [22:00, 02:00)"."""
    try:
        runs = _runs(part, parse_part_set(part, value))
    except ValueError:
        return f"{part}({column})={value}"
    texts = [_run_text(part, s, n) for s, n in runs]
    if len(texts) == 1 and part != "hour" and runs[0][1] == 1:
        return f"{part}({column})={texts[0]}"
    return f"{part}({column}) in " + (texts[0] if len(texts) == 1 else "{" + ", ".join(texts) + "}")


def iso_time(micros: float) -> str:
    """An ISO date ("2025-03-01") for a midnight, an ISO date-time otherwise."""
    if not math.isfinite(micros):
        return "-inf" if micros < 0 else "inf"
    us = int(micros)
    when = _EPOCH + dt.timedelta(microseconds=us)
    if us % DAY_US == 0:
        return when.date().isoformat()
    return when.isoformat(timespec="seconds" if us % 1_000_000 == 0 else "microseconds")


def range_text(column: str, low: float, high: float) -> str:
    """E.g. "listed_at < 2025-06-01", "listed_at in [2024-12-01, 2025-03-01)"."""
    if not math.isfinite(low) and not math.isfinite(high):
        return f"{column} is any time"
    if not math.isfinite(low):
        return f"{column} < {iso_time(high)}"
    if not math.isfinite(high):
        return f"{column} >= {iso_time(low)}"
    return f"{column} in [{iso_time(low)}, {iso_time(high)})"


def snap_to_days(micros: np.ndarray) -> np.ndarray:
    """Timestamps floored to their midnight (UTC): cuts between days print as dates."""
    return np.floor(micros / DAY_US) * DAY_US


def spans_days(micros: np.ndarray, days: int = 7) -> bool:
    """Whether the timestamps spread over at least ``days`` days (then cuts snap to midnights)."""
    present = micros[~np.isnan(micros)]
    return len(present) > 0 and float(present.max() - present.min()) >= days * DAY_US
