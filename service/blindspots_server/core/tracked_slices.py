"""Error statistics of given slices on a test set: slices found on earlier model
versions, measured again on this one."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .pool_filters import predicate_mask
from .results import Interval, Predicate, SliceStat
from .significance import benjamini_hochberg, excess_error_p_values, wilson_interval


def evaluate_slices(slices: list[tuple[Predicate, ...]], metadata: pd.DataFrame, failed: np.ndarray,
                    baseline_error_rate: float) -> list[SliceStat]:
    """One SliceStat per slice whose columns exist in ``metadata``, in the given order.

    p-values test excess errors over ``baseline_error_rate``; q-values are
    Benjamini-Hochberg adjusted within these slices only.
    """
    failed = np.asarray(failed, dtype=bool)
    if len(metadata) != len(failed):
        raise ValueError(f"metadata has {len(metadata)} rows but failed has {len(failed)}")
    kept, support, failures = [], [], []
    for predicates in slices:
        if not predicates or any(p.column not in metadata.columns for p in predicates):
            continue
        try:
            mask = predicate_mask(metadata, predicates)
        except ValueError:
            continue        # the column changed type since: the slice no longer applies
        kept.append(tuple(predicates))
        support.append(int(mask.sum()))
        failures.append(int((mask & failed).sum()))
    if not kept:
        return []
    n, k = np.asarray(support), np.asarray(failures)
    low, high = wilson_interval(k, np.maximum(n, 1))
    p = excess_error_p_values(k, np.maximum(n, 1), baseline_error_rate)
    p = np.where(n > 0, p, 1.0)
    q = benjamini_hochberg(p)
    out = []
    for i, predicates in enumerate(kept):
        rate = k[i] / n[i] if n[i] else 0.0
        lift = rate / baseline_error_rate if baseline_error_rate > 0 else 0.0
        out.append(SliceStat(predicates=predicates, support=int(n[i]), failures=int(k[i]), error_rate=float(rate),
                             ci=Interval(float(low[i]), float(high[i])), lift=float(lift),
                             p_value=float(p[i]), q_value=float(q[i])))
    return out
