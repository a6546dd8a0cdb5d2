"""blindspots.integrations.wandb with a real W&B run in offline mode (everything written under a
temporary directory, nothing sent) and a real server: what a pipeline's W&B run gets from a
diagnosis. Offline, W&B keeps the run's metrics in a binary log that only its sync reads, so the
test reads what the run object holds (its summary), the table files W&B writes into the run's
folder, the artifact's staged files, and the names the run's log records."""
from __future__ import annotations

import glob
import io
import json
import os

import pandas as pd
import pytest
from google.protobuf import json_format

wandb = pytest.importorskip("wandb")

from blindspots.integrations.wandb import ARTIFACT_TYPE, log_diagnosis  # noqa: E402
from blindspots.v1 import blindspots_pb2 as pb  # noqa: E402


@pytest.fixture
def offline(tmp_path, monkeypatch):
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": tmp_path, "WANDB_DATA_DIR": tmp_path / "data",
                        "WANDB_CACHE_DIR": tmp_path / "cache", "WANDB_CONFIG_DIR": tmp_path / "config",
                        "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(name, str(value))
    yield tmp_path
    if wandb.run is not None:
        wandb.finish()


def test_a_diagnosis_logged_to_wandb_carries_its_numbers_tables_and_findings(two_versions, offline):
    v1, v2 = two_versions
    worse = v2.previous_version.regressions()         # the fixture checked there are some
    with pytest.raises(ValueError, match="no active W&B run"):
        log_diagnosis(v2)
    run = wandb.init(project="blindspots-test")
    first = log_diagnosis(v1, step=1)
    logged = log_diagnosis(v2, step=2)
    assert "blindspots/version_regressions" not in first          # v1 had nothing to compare with
    assert logged["blindspots/error_rate"] == pytest.approx(v2.baseline_error_rate)
    assert logged["blindspots/regions"] == len(v2.regions) > 0
    assert logged["blindspots/failures"] == v2.message.num_failures
    assert logged["blindspots/version_regressions"] == len(worse)
    assert logged["blindspots/error_rate_change"] > 0
    # W&B commits a step's values when a later step is logged (or the run ends), not before: the
    # pipeline's own numbers of step 2 may still come.
    run.log({"epoch": 3}, step=3)
    assert {k: run.summary[k] for k in logged} == logged            # step 2's values
    assert run.summary["blindspots/diagnosis_id"] == v2.id and run.summary["blindspots/baseline_run_id"] == v1.run_id
    run_dir, log = run.dir, os.path.join(os.path.dirname(run.dir), f"run-{run.id}.wandb")
    run.finish()

    # The tables, as W&B wrote them (numbered in the order they were logged: v1's, then v2's).
    (regions,) = glob.glob(f"{run_dir}/media/table/blindspots/regions_table_1_*.table.json")
    table = json.load(open(regions))
    expected = v2.to_frame()
    assert table["columns"] == list(expected.columns) and len(table["data"]) == len(v2.regions)
    assert [row[0] for row in table["data"]] == expected.iloc[:, 0].tolist()
    assert len(glob.glob(f"{run_dir}/media/table/blindspots/regions_table_*.table.json")) == 2
    (slices,) = glob.glob(f"{run_dir}/media/table/blindspots/slices_table_1_*.table.json")
    assert len(json.load(open(slices))["data"]) == len(v2.slices_frame())

    # The artifacts: one a blindspots run, aliased with the diagnosis, with the four files.
    recorded = open(log, "rb").read()
    for name in (f"blindspots-{v1.run_id}", f"blindspots-{v2.run_id}", ARTIFACT_TYPE, v1.id, v2.id,
                 "summary.txt", "regions.csv", "slices.csv", "diagnosis.json"):
        assert name.encode() in recorded, name
    # Staged: our four files a diagnosis, beside the tables (W&B stages a run's tables too).
    staged = [open(p).read() for p in glob.glob(f"{offline}/data/artifacts/staging/*")]
    as_json = [json.loads(t) for t in staged if t.startswith("{")]
    messages = [json_format.ParseDict(j, pb.Diagnosis()) for j in as_json if j.get("_type") != "table"]
    assert sorted(m.id for m in messages) == sorted([v1.id, v2.id]) and v2.message in messages
    assert sum(t.startswith(f"diagnosis {v2.id}") for t in staged) == 1 and any("camera=cam_e" in t for t in staged)
    header = ",".join(pd.read_csv(io.StringIO(expected.to_csv(index=False))).columns)
    assert sum(t.startswith(header) for t in staged) == 2          # regions.csv of each diagnosis


def test_without_an_artifact_nothing_is_staged(client, small_scenario, offline):
    s = small_scenario.scenario
    run = client.create_run("eval", class_names=s.class_names, embedding_dim=128)
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=small_scenario.test_probs,
                        progress=False)
    diagnosis = run.diagnose(progress=False)
    with wandb.init(project="blindspots-test") as wb:
        logged = log_diagnosis(diagnosis, artifact=False)          # W&B's own step, committed at once
        assert wb.summary["blindspots/regions"] == logged["blindspots/regions"]
        assert wb.summary["blindspots/diagnosis_id"] == diagnosis.id
        log = os.path.join(os.path.dirname(wb.dir), f"run-{wb.id}.wandb")
    assert ARTIFACT_TYPE.encode() not in open(log, "rb").read()
    staged = [open(p).read() for p in glob.glob(f"{offline}/data/artifacts/staging/*")]
    assert staged and all(json.loads(t).get("_type") == "table" for t in staged)     # the two tables only
