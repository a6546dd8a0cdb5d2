"""The labeling round trip through a real server: picks out as Label Studio tasks, a
Label Studio export (hand-written in its documented JSON export format) back in as
labels, the next round skipping them, and the labels handed to the next training run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blindspots import Client, InvalidArgumentError
from blindspots.labeling import (coco_classification, label_studio_config, read_label_studio_export,
                                 task_uri)
from blindspots_scenarios.listings import make_scenario, train_model
from conftest import start_server

BIN = Path(sys.executable).parent / "blindspots"


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("labeling")
    # The demo's scenario size: its weak label-noise region (the watermark) is significant there
    # (tests/test_demo.py checks it is found); at 4,000 test rows it no longer is, since regions
    # are tested on rows held out of the clustering.
    s = make_scenario(n_train=3000, n_test=10000, n_pool=2500, seed=0)
    model = train_model(s.train, seed=0, epochs=15)
    server = start_server(root / "data")
    address = f"127.0.0.1:{server.port}"
    client = Client(address, retries=2, timeout=120)
    run = client.create_run("labeling-eval", class_names=s.class_names, embedding_dim=128, model_name="mlp",
                            model_version="v1")
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels,
                        probabilities=model.predict_proba(s.test.embeddings),
                        metadata=s.test.metadata, uris=s.test.uris, progress=False)
    pool_probs = model.predict_proba(s.pool.embeddings)
    pool = client.create_pool("labeling-pool", embedding_dim=128, num_classes=len(s.class_names))
    pool.add(s.pool.ids, s.pool.embeddings, probabilities=pool_probs, metadata=s.pool.metadata,
             uris=s.pool.uris, progress=False)
    diagnosis = run.diagnose(progress=False)
    yield {"root": root, "server": server, "address": address, "client": client, "run": run, "pool": pool,
           "scenario": s, "pool_probs": pool_probs, "diagnosis": diagnosis}
    client.close()
    server.stop()


def _cli(loop, *args: str) -> str:
    done = subprocess.run([str(BIN), *args, "--address", loop["address"]], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _annotate(tasks: list[dict], label_of: dict[str, str]) -> list[dict]:
    """What Label Studio's JSON export holds after an annotator chose ``label_of``'s classes:
    the tasks with ids, their predictions, and one annotation each (fields as documented)."""
    out = []
    for i, task in enumerate(tasks, start=1):
        label = label_of[task["data"]["sample_id"]]
        out.append({
            "id": i, "data": task["data"], "meta": {}, "project": 1, "inner_id": i,
            "created_at": "2026-11-27T10:00:00.000000Z", "updated_at": "2026-11-27T10:05:00.000000Z",
            "predictions": [{"id": i, "model_version": p["model_version"], "score": p["score"],
                             "result": p["result"], "task": i} for p in task.get("predictions", [])],
            "annotations": [{
                "id": 100 + i, "completed_by": 7, "was_cancelled": False, "ground_truth": False,
                "created_at": "2026-11-27T10:05:00.000000Z", "updated_at": "2026-11-27T10:05:00.000000Z",
                "lead_time": 4.2, "task": i, "project": 1, "parent_prediction": i,
                "result": [{"id": f"r{i}", "from_name": "label", "to_name": "image", "type": "choices",
                            "origin": "prediction-changed", "value": {"choices": [label]}}]}],
            "drafts": [], "total_annotations": 1, "cancelled_annotations": 0, "total_predictions": 1})
    return out


def test_suggest_writes_label_studio_tasks_with_the_models_prediction(loop, tmp_path):
    s, pool = loop["scenario"], loop["pool"]
    tasks_path = tmp_path / "tasks.json"
    out = _cli(loop, "suggest", loop["run"].id, "--pool", pool.id, "--budget", "60", "-o", str(tasks_path),
               "--format", "label-studio")
    assert "60 candidates written" in out
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 60
    row_of = {sid: i for i, sid in enumerate(s.pool.ids)}
    for rank, task in enumerate(tasks, start=1):
        data = task["data"]
        i = row_of[data["sample_id"]]
        assert data["image"] == s.pool.uris[i] and data["rank"] == rank and data["reason"]
        assert isinstance(data["region"], int)
        (pred,) = task["predictions"]
        assert pred["model_version"] == "v1"
        assert pred["result"][0]["value"]["choices"] == [s.class_names[int(loop["pool_probs"][i].argmax())]]
        assert pred["score"] == pytest.approx(float(loop["pool_probs"][i].max()), abs=1e-6)
        assert pred["result"][0]["from_name"] == "label" and pred["result"][0]["to_name"] == "image"
    config = (tmp_path / "tasks.label_config.xml").read_text()
    assert all(f'<Choice value="{c}"/>' in config for c in s.class_names) and 'value="$image"' in config


def test_export_comes_back_as_labels_and_the_next_round_skips_them(loop, tmp_path):
    s, client, run, pool = loop["scenario"], loop["client"], loop["run"], loop["pool"]
    picks = run.suggest(pool, budget=40, output=str(tmp_path / "round1.json"), progress=False)
    tasks = json.loads((tmp_path / "round1.json").read_text())
    truth = {sid: s.class_names[t] for sid, t in zip(s.pool.ids, s.pool.true_labels)}
    export = _annotate(tasks, truth)
    # An annotator skipped one task and changed their mind on another.
    export[0]["annotations"][0]["was_cancelled"] = True
    export[1]["annotations"].insert(0, {**export[1]["annotations"][0], "id": 1,
                                        "updated_at": "2026-11-27T09:00:00.000000Z",
                                        "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                                    "value": {"choices": ["not-the-answer"]}}]})
    export_path = tmp_path / "export.json"
    export_path.write_text(json.dumps(export))

    labels_path = tmp_path / "labels.parquet"
    out = _cli(loop, "labels", "import", str(export_path), "--pool", pool.id, "-o", str(labels_path))
    assert "39 labels stored" in out and "1 tasks in the export had no label" in out

    stored = pd.read_parquet(labels_path)
    expected = picks.iloc[1:]
    assert sorted(stored["sample_id"]) == sorted(expected["sample_id"])
    row_of = {sid: i for i, sid in enumerate(s.pool.ids)}
    for sid, uri, label in zip(stored["sample_id"], stored["uri"], stored["label"]):
        assert label == truth[sid] and uri == s.pool.uris[row_of[sid]]
    frame = pool.labels(class_names=s.class_names)
    assert (frame["label_index"] == [int(s.pool.true_labels[row_of[x]]) for x in frame["sample_id"]]).all()

    # Later rounds never pick a labeled sample, even when repeats are allowed.
    again = run.suggest(pool, budget=300, allow_repeats=True, progress=False)
    assert not set(again["sample_id"]) & set(stored["sample_id"])
    assert picks["sample_id"].iloc[0] in set(again["sample_id"]) or len(again) == 300

    # Importing the same export again replaces, it does not add.
    summary = client.import_labels(read_label_studio_export(export_path), pool_id=pool.id)
    assert (summary.labels_stored, summary.labels_replaced, summary.total_labeled) == (39, 39, 39)


def test_bad_labels_are_rejected_naming_the_field(loop):
    client, run, pool = loop["client"], loop["run"], loop["pool"]
    with pytest.raises(InvalidArgumentError, match="sample_ids: 1 ids are not in pool"):
        client.import_labels(pd.DataFrame({"sample_id": ["nope"], "label": ["x"]}), pool_id=pool.id)
    with pytest.raises(InvalidArgumentError, match=r"labels\[0\]: 'zebra' is not one of the run's class names"):
        client.import_labels(pd.DataFrame({"sample_id": [loop["scenario"].test.ids[0]], "label": ["zebra"]}),
                             run_id=run.id)
    with pytest.raises(InvalidArgumentError, match="pool_id: give exactly one"):
        client.import_labels(pd.DataFrame({"sample_id": ["a"], "label": ["b"]}), pool_id=pool.id, run_id=run.id)
    with pytest.raises(ValueError, match="no data.sample_id"):
        read_label_studio_export([{"id": 5, "data": {"image": "x.png"}, "annotations": []}])


def test_relabel_requests_carry_the_given_label(loop, tmp_path):
    s, client, run, diagnosis = loop["scenario"], loop["client"], loop["run"], loop["diagnosis"]
    noisy = {r.id for r in diagnosis.message.regions if r.kind == 2}       # LABEL_NOISE
    assert noisy, "the scenario plants a label-noise region; the diagnosis should find it"
    out = _cli(loop, "relabel", run.id, "-o", str(tmp_path / "relabel.json"))
    tasks = json.loads((tmp_path / "relabel.json").read_text())
    assert f"{len(tasks)} relabel requests" in out and len(tasks) > 0
    row_of = {sid: i for i, sid in enumerate(s.test.ids)}
    per_sample = loop["server"].store.diagnosis_rows(diagnosis.id)
    region = per_sample.column("region").to_numpy()
    failed = per_sample.column("failed").to_numpy(zero_copy_only=False)
    assert len(tasks) == int((np.isin(region, list(noisy)) & failed).sum())
    for task in tasks:
        i = row_of[task["data"]["sample_id"]]
        assert task["data"]["region"] in noisy and failed[i]
        assert task["predictions"][0]["result"][0]["value"]["choices"] == [s.class_names[s.test.labels[i]]]
    # The corrected labels go back against the run's rows.
    export = _annotate(tasks, {t["data"]["sample_id"]: s.class_names[s.test.true_labels[row_of[t["data"]["sample_id"]]]]
                               for t in tasks})
    summary = client.import_labels(read_label_studio_export(export), run_id=run.id, source="relabel")
    assert summary.total_labeled == len(tasks)
    back = client.labels_frame(run_id=run.id)
    assert set(back["sample_id"]) == {t["data"]["sample_id"] for t in tasks} and (back["source"] == "relabel").all()


def test_json_min_export_and_other_formats(loop, tmp_path):
    s, run, pool = loop["scenario"], loop["run"], loop["pool"]
    rows = [{"id": 1, "image": "a.png", "sample_id": "p1", "label": "x", "annotator": 3},
            {"id": 2, "image": "b.png", "sample_id": "p2"}]
    frame = read_label_studio_export(rows)
    assert frame[["sample_id", "label", "uri"]].values.tolist() == [["p1", "x", "a.png"]]
    assert frame.attrs["unlabeled"] == 1

    picks = run.suggest(pool, budget=10, allow_repeats=True, output=str(tmp_path / "picks.csv"), progress=False)
    csv = pd.read_csv(tmp_path / "picks.csv")
    assert csv["sample_id"].tolist() == picks["sample_id"].tolist() and "predicted_label" in csv
    coco = coco_classification(picks, s.class_names)
    assert [c["name"] for c in coco["categories"]] == list(s.class_names)
    assert len(coco["images"]) == 10 and len(coco["annotations"]) == 10
    assert coco["annotations"][0]["category_id"] == int(picks["predicted_label"].iloc[0]) + 1
    run.suggest(pool, budget=5, allow_repeats=True, output=str(tmp_path / "coco.json"), format="coco",
                progress=False)
    assert set(json.loads((tmp_path / "coco.json").read_text())) == {"info", "images", "categories", "annotations"}
    assert "<Choices" in label_studio_config(["a", "b"])


def test_task_uri_maps_local_files_under_the_root(tmp_path):
    img = tmp_path / "imgs" / "a b.png"
    assert task_uri(img.as_uri(), str(tmp_path)) == "/data/local-files/?d=imgs/a%20b.png"
    assert task_uri(str(img), str(tmp_path)) == "/data/local-files/?d=imgs/a%20b.png"
    assert task_uri("https://x/y.png", str(tmp_path)) == "https://x/y.png"
    assert task_uri(img.as_uri()) == img.as_uri()
