"""pool_coverage on constructed data: failures drawn like the pool's rows are covered about 9
times in 10 (the reach is the pool's own 90th-percentile spacing); failures from a cluster the
pool lacks, or whose neighbourhood is excluded, are not."""
from __future__ import annotations

import numpy as np

from blindspots_server.core.pool_coverage import pool_coverage
from blindspots_server.core.pool_index import PoolIndex, normalise
from blindspots_server.core.suggest_inputs import TargetRegion


def _region(region_id: int, failures: np.ndarray) -> TargetRegion:
    return TargetRegion(region_id=region_id, excess_errors=10.0, failure_embeddings=failures,
                        failure_indices=np.arange(len(failures)))


def test_coverage_tells_a_cluster_the_pool_lacks_from_one_it_holds():
    rng = np.random.default_rng(0)
    dim = 16
    centres = rng.normal(size=(3, dim)) * 4
    pool = np.concatenate([centres[c] + rng.normal(size=(3000, dim)) for c in (0, 1)]).astype(np.float32)
    unit = normalise(pool)
    index = PoolIndex(dim, kind="flat").build(unit)
    like_pool = np.concatenate([centres[c] + rng.normal(size=(500, dim)) for c in (0, 1)])   # fresh draws
    absent = centres[2] + rng.normal(size=(500, dim))
    allowed = np.ones(len(pool), dtype=bool)
    held, lacking = pool_coverage([_region(0, like_pool.astype(np.float32)), _region(1, absent.astype(np.float32))],
                                  index.search, unit.__getitem__, allowed)
    assert 0.8 <= held.covered <= 0.97 and 0.8 <= held.distance_ratio <= 1.25, held
    assert lacking.covered < 0.05 and lacking.distance_ratio > 2, lacking
    assert held.reach == lacking.reach > 0 and (held.failures, lacking.failures) == (500, 500)
    # Excluding the pool rows of cluster 0 (labeled, or picked before) uncovers the failures like them.
    allowed[:3000] = False
    (used_up,) = pool_coverage([_region(0, (centres[0] + rng.normal(size=(300, dim))).astype(np.float32))],
                               index.search, unit.__getitem__, allowed)
    assert used_up.covered < 0.05 and used_up.distance_ratio > 2, used_up


def test_no_spacing_to_measure_and_confusions_are_left_out():
    unit = normalise(np.eye(4, dtype=np.float32))
    index = PoolIndex(4, kind="flat").build(unit)
    region = _region(0, unit[:2])
    assert pool_coverage([region], index.search, unit.__getitem__, np.array([True, False, False, False])) == []
    confusion = TargetRegion(region_id=-1, excess_errors=3.0, failure_embeddings=unit[:2],
                             failure_indices=np.arange(2), confusion=(0, 1))
    assert [c.region_id for c in pool_coverage([region, confusion], index.search, unit.__getitem__,
                                               np.ones(4, dtype=bool))] == [0]
