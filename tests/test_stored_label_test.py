"""A stored diagnosis carries the label test to the targeted strategy, and one stored before the
test existed (no numbers) is read as "not measured", never as "labels unpredictable"."""
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
