"""A stored diagnosis carries the typing tests (the label test to the targeted strategy; with two
classes the failure lift), and one stored before the label test existed (no numbers) is read as
"not measured", never as "labels unpredictable"."""
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.server.suggest_inputs import _predictable


def _region(**evidence) -> pb.Region:
    return pb.Region(id=0, evidence=pb.RegionEvidence(summary="s", **evidence))


def test_stored_label_test_is_read_back():
    assert _predictable(_region(failure_label_agreement=0.9, failure_label_chance=0.5)) is True
    assert _predictable(_region(failure_label_agreement=0.1, failure_label_chance=0.12)) is False


def test_a_diagnosis_without_the_numbers_is_not_measured():
    # proto3 would read absent doubles as 0.0, which the test would call "unpredictable".
    assert _predictable(_region()) is None
    assert _predictable(pb.Region(id=0)) is None
    assert _predictable(_region(failure_label_agreement=0.1)) is None


def test_two_class_typing_numbers_travel_to_the_sdk(client):
    """With two classes the label test is absent and the failure-lift pair is stored instead,
    through a real server, and shows in Diagnosis.to_frame()."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    dim, n = 16, 3000
    centres = np.stack([np.zeros(dim), np.full(dim, 3.0)])
    true = rng.integers(0, 2, n)
    x = centres[true] + rng.normal(size=(n, dim))
    labels = true.copy()
    flipped = rng.choice(np.flatnonzero(true == 1), 90, replace=False)
    labels[flipped] = 0                                   # wrong labels on ordinary class-1 rows
    gap = centres[1] + 0.8 * np.eye(dim)[0] + 0.6 * rng.normal(size=(90, dim))   # class 0 read as 1
    x = np.concatenate([x, gap]).astype(np.float32)
    labels = np.concatenate([labels, np.zeros(90, int)])
    predicted = np.concatenate([true, np.ones(90, int)])
    probs = np.where(predicted[:, None] == np.arange(2), 0.95, 0.05)
    run = client.create_run("binary", class_names=["neg", "pos"], embedding_dim=dim)
    run.log_predictions([f"r{i}" for i in range(len(x))], x, labels=labels, probabilities=probs,
                        metadata=pd.DataFrame({"site": rng.choice(["a", "b"], len(x))}))
    diagnosis = run.diagnose(progress=False)
    regions = diagnosis.message.regions
    assert regions
    for r in regions:
        ev = r.evidence
        assert not ev.HasField("failure_label_agreement")
        assert ev.HasField("failure_neighbour_failures") and ev.HasField("prediction_failure_rate")
        assert 0 <= ev.prediction_failure_rate < ev.failure_neighbour_failures <= 1
        assert "neighbours fail" in ev.summary
    frame = diagnosis.to_frame()
    assert frame["failure_neighbour_failures"].notna().all()
    assert frame["failure_label_agreement"].isna().all()
