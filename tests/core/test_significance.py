"""Error-rate statistics against textbook values."""
from __future__ import annotations

import numpy as np
from scipy import stats

from blindspots_server.core.significance import (benjamini_hochberg, enrichment_p_values,
                                                 excess_error_p_values, wilson_interval)


def test_wilson_interval_known_values():
    low, high = wilson_interval(np.array([0, 10, 50]), np.array([10, 10, 100]))
    np.testing.assert_allclose(low, [0.0, 0.7225, 0.4038], atol=1e-3)
    np.testing.assert_allclose(high, [0.2775, 1.0, 0.5962], atol=1e-3)


def test_binomial_p_value_is_one_sided_exact():
    p = excess_error_p_values(np.array([5, 30]), np.array([100, 100]), 0.1)
    np.testing.assert_allclose(p, [stats.binom.sf(4, 100, 0.1), stats.binom.sf(29, 100, 0.1)])
    assert p[0] > 0.9 and p[1] < 1e-6


def test_benjamini_hochberg_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.001])
    q = benjamini_hochberg(p)
    order = np.argsort(p)
    raw = p[order] * len(p) / np.arange(1, len(p) + 1)
    expected = np.minimum.accumulate(raw[::-1])[::-1]
    np.testing.assert_allclose(q[order], expected)
    assert (q >= p).all()


def test_enrichment_p_value():
    p = enrichment_p_values(np.array([40]), np.array([50]), 100, 1000)
    assert p[0] < 1e-20
