"""Fixtures shared by the SDK's tests (the suite's own come from tests/conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def two_versions(client, small_scenario):
    """Two diagnosed versions of one model through a real server: v2 gets one camera's rows wrong,
    so its diagnosis compares with v1's and finds regressions. (v1, v2) as SDK Diagnosis objects."""
    s = small_scenario.scenario
    broken = small_scenario.test_probs.copy()
    cam = (s.test.metadata["camera"] == "cam_e").to_numpy()
    broken[cam] = np.roll(broken[cam], 1, axis=1)

    def diagnosed(version, probabilities):
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=128, model_name="mlp",
                                model_version=version)
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=probabilities,
                            metadata=s.test.metadata, progress=False)
        return run.diagnose(progress=False)

    v1 = diagnosed("v1", small_scenario.test_probs)
    v2 = diagnosed("v2", broken)
    assert len(v2.previous_version.regressions())
    return v1, v2
