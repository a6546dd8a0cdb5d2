"""Property test of the metadata discretisation: a code means its predicate.

For any metadata a pipeline may send (strings of any cardinality, numbers with ties,
missing values, bools, timestamps naive or with a zone), every code's
predicate, evaluated on the original column, selects exactly the rows holding that
code: a slice found on codes is the slice its name describes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blindspots_server.core.metadata_bins import bin_metadata
from blindspots_server.core.pool_filters import predicate_mask

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = ["few strings", "many strings", "unique strings", "numbers", "ties", "ints", "bools",
         "timestamps", "zoned timestamps", "one value", "missing"]


def _column(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    if kind == "few strings":
        s = pd.Series(rng.choice(["a", "b", "c"], n), dtype=object)
    elif kind == "many strings":
        s = pd.Series([f"v{int(v)}" for v in rng.zipf(1.5, n) % 300], dtype=object)
    elif kind == "unique strings":
        s = pd.Series([f"id{i}" for i in range(n)], dtype=object)
    elif kind == "numbers":
        s = pd.Series(rng.lognormal(3, 2, n) * rng.choice([-1, 1], n))   # infinities: refused upstream
    elif kind == "ties":
        s = pd.Series(np.where(rng.random(n) < 0.7, 5.0, rng.normal(size=n)))
    elif kind == "ints":
        s = pd.Series(rng.integers(0, 4, n))
    elif kind == "bools":
        s = pd.Series(rng.random(n) < 0.3)
    elif kind in ("timestamps", "zoned timestamps"):
        s = pd.Series(pd.Timestamp("2025-03-30") + pd.to_timedelta(rng.integers(0, 400 * 86400, n), unit="s"))
        if kind == "zoned timestamps":
            s = s.dt.tz_localize("Europe/Berlin", ambiguous="NaT", nonexistent="NaT")
    elif kind == "one value":
        s = pd.Series(["same"] * n, dtype=object)
    else:
        s = pd.Series([None] * n, dtype=object)
    if kind not in ("bools", "ints", "missing"):
        s[rng.random(n) < 0.1] = None
    return s


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 400),
       kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4), bins=st.integers(2, 8))
def test_every_code_selects_the_rows_its_predicate_names(seed, n, kinds, bins):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({f"c{i}_{k.replace(' ', '_')}": _column(k, n, rng) for i, k in enumerate(kinds)})
    binned = bin_metadata(meta, bins)
    assert binned.codes.shape == (n, len(binned.columns))
    for j, preds in enumerate(binned.predicates):
        codes = binned.codes[:, j]
        assert codes.max(initial=-1) < len(preds)
        for code, pred in enumerate(preds):
            rows = predicate_mask(meta, (pred,))
            np.testing.assert_array_equal(rows, codes == code, err_msg=f"{binned.columns[j]}: {pred}")
