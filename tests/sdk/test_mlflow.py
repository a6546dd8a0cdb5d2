"""blindspots.integrations.mlflow against a real MLflow tracking store (MLflow's own file store
in a temporary directory) and a real server: what a pipeline's MLflow run gets from a diagnosis."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from google.protobuf import json_format

mlflow = pytest.importorskip("mlflow")

from blindspots.integrations.mlflow import log_diagnosis  # noqa: E402
from blindspots.v1 import blindspots_pb2 as pb  # noqa: E402


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    # MLflow 3 refuses its file store unless asked; a tracking server or database is what
    # users run, the file store is the same client code over a local directory.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(f"file:{tmp_path / 'mlruns'}")
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri("")


def test_a_diagnosis_logged_to_mlflow_carries_its_numbers_and_findings(two_versions, tracking):
    v1, v2 = two_versions
    worse = v2.previous_version.regressions()         # the fixture checked there are some
    with pytest.raises(ValueError, match="no active MLflow run"):
        log_diagnosis(v2)
    with mlflow.start_run() as first:
        log_diagnosis(v1, step=1)
    with mlflow.start_run() as second:
        logged = log_diagnosis(v2, step=2)

    got = tracking.get_run(second.info.run_id).data
    assert got.metrics == logged
    assert logged["blindspots.error_rate"] == pytest.approx(v2.baseline_error_rate)
    assert logged["blindspots.regions"] == len(v2.regions) > 0
    assert logged["blindspots.failures"] == v2.message.num_failures
    assert logged["blindspots.worst_region_error_rate"] == max(r.error_rate for r in v2.regions)
    assert logged["blindspots.version_regressions"] == len(worse)
    assert logged["blindspots.error_rate_change"] > 0
    assert 0 < logged["blindspots.failures_in_regions"] <= 1
    assert got.tags["blindspots.diagnosis_id"] == v2.id and got.tags["blindspots.baseline_run_id"] == v1.run_id
    assert [m.step for m in tracking.get_metric_history(second.info.run_id, "blindspots.regions")] == [2]
    # v1 had nothing to compare with: no version metrics, no baseline tag.
    first_data = tracking.get_run(first.info.run_id).data
    assert "blindspots.version_regressions" not in first_data.metrics
    assert "blindspots.baseline_run_id" not in first_data.tags

    artifacts = {a.path for a in tracking.list_artifacts(second.info.run_id, "blindspots")}
    assert artifacts == {f"blindspots/{n}" for n in ("summary.txt", "regions.csv", "slices.csv", "diagnosis.json")}
    folder = tracking.download_artifacts(second.info.run_id, "blindspots")
    assert json_format.ParseDict(json.load(open(f"{folder}/diagnosis.json")), pb.Diagnosis()) == v2.message
    assert len(pd.read_csv(f"{folder}/regions.csv")) == len(v2.regions)
    assert "camera=cam_e" in open(f"{folder}/summary.txt").read()
