"""A slice fixed in a later model version keeps being measured, in the API and in metrics."""
from __future__ import annotations

import numpy as np
from prometheus_client import generate_latest

SLICE = "camera=cam_e & region=north"


def test_a_fixed_slice_is_tracked_into_the_version_that_fixed_it(server, client, small_scenario):
    s = small_scenario.scenario
    probs_v1 = small_scenario.test_probs
    # v2 "fixes" the planted condition: confident and right on those rows, as before elsewhere.
    fixed = s.test.conditions["north_cam_e"].to_numpy()
    probs_v2 = probs_v1.copy()
    probs_v2[fixed] = np.eye(len(s.class_names), dtype=np.float32)[s.test.labels[fixed]]

    diagnoses = {}
    for version, probs in (("v1", probs_v1), ("v2", probs_v2)):
        run = client.create_run(f"eval-{version}", class_names=s.class_names, embedding_dim=128,
                                model_name="listings-mlp", model_version=version, project="listings")
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=probs,
                            metadata=s.test.metadata)
        diagnoses[version] = run.diagnose()

    v1, v2 = diagnoses["v1"], diagnoses["v2"]
    assert v1.slices[0].name == SLICE and not v1.tracked_slices      # nothing earlier to follow
    assert SLICE not in {x.name for x in v2.slices}                   # fixed: no longer a top slice
    tracked = {x.name: x for x in v2.tracked_slices}
    assert SLICE in tracked
    assert tracked[SLICE].support == fixed.sum() and tracked[SLICE].failures == 0
    assert "slices followed from other versions" in v2.summary()

    metrics = generate_latest(server.telemetry.registry).decode()
    rates = {line.split("model_version=")[1][1:3]: float(line.rsplit(" ", 1)[1])
             for line in metrics.splitlines()
             if line.startswith("blindspots_slice_error_rate{") and f'slice="{SLICE}"' in line}
    assert rates["v1"] > 0.9 and rates["v2"] == 0.0
