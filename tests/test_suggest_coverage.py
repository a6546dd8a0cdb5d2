"""Suggest measures how well the eligible pool covers each region's failures: a real server,
the listings scenario, its pool whole and without the rows of the hidden "dark" condition."""
from __future__ import annotations

import numpy as np
import pandas as pd

from test_api import _log_scenario


def test_suggest_measures_how_the_pool_covers_each_region(client, small_scenario):
    sm = small_scenario
    s = sm.scenario
    run, pool, _ = _log_scenario(client, sm)
    diagnosis = run.diagnose(progress=False)
    row_of = pd.Series(np.arange(len(s.test.ids)), index=s.test.ids)
    dark_share = {r.id: s.test.conditions["dark"].to_numpy()[
        row_of[diagnosis.region_members(r.id).sample_id].to_numpy()].mean() for r in diagnosis.regions}
    dark = max(dark_share, key=dark_share.get)
    assert dark_share[dark] > 0.5, dark_share

    keep = np.flatnonzero(~s.pool.conditions["dark"].to_numpy())
    without = client.create_pool("without-dark", embedding_dim=128, num_classes=len(s.class_names),
                                 project="listings")
    without.add(s.pool.ids[keep], s.pool.embeddings[keep], probabilities=sm.pool_probs[keep],
                metadata=s.pool.metadata.iloc[keep], progress=False)
    whole = run.suggest(pool, budget=200, progress=False)
    lacking = run.suggest(without, budget=200, progress=False)
    coverage = {name: pd.DataFrame(picks.attrs["pool_coverage"]).set_index("region_id")
                for name, picks in (("whole", whole), ("without", lacking))}
    assert set(coverage["whole"].index) == {r.id for r in diagnosis.regions}
    # Failures like the pool's rows: about 9 in 10 have a pool row within the pool's own reach.
    assert (coverage["whole"].covered >= 0.8).all() and (coverage["whole"].distance_ratio < 1.2).all(), coverage
    change = coverage["without"] - coverage["whole"]
    assert change.covered[dark] <= -0.25 and change.distance_ratio[dark] >= 0.3, change
    others = change.drop(index=dark)
    assert (others.covered.abs() < 0.1).all() and (others.distance_ratio.abs() < 0.15).all(), change
    # Baselines measure nothing; the answers' frames still concatenate.
    assert run.suggest(pool, budget=50, strategy="margin", progress=False).attrs["pool_coverage"] == []
    assert len(pd.concat([whole, lacking])) == 400
