"""The HTML report and the map behind it, against a real server, rendered in headless Chromium."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blindspots import Client, InvalidArgumentError
from blindspots._report_map import convex_hull
from blindspots.report import image_data_uri, local_image_path
from blindspots_scenarios.listings import make_scenario, train_model
from blindspots_scenarios.listings_images import attach_images, encode_png, render_listing
from conftest import start_server

BIN = Path(sys.executable).parent / "blindspots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory):
    """A diagnosed run whose samples have PNG images, a pool, and a suggestion manifest."""
    root = tmp_path_factory.mktemp("report")
    s = make_scenario(n_train=2000, n_test=1500, n_pool=2500, seed=1)
    attach_images(s, root / "images")
    model = train_model(s.train, seed=1, epochs=15)
    server = start_server(root / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    run = client.create_run("report-eval", class_names=s.class_names, embedding_dim=128, model_name="mlp")
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels,
                        probabilities=model.predict_proba(s.test.embeddings),
                        metadata=s.test.metadata, uris=s.test.uris, progress=False)
    pool = client.create_pool("report-pool", embedding_dim=128, num_classes=len(s.class_names))
    pool.add(s.pool.ids, s.pool.embeddings, probabilities=model.predict_proba(s.pool.embeddings),
             metadata=s.pool.metadata, uris=s.pool.uris, progress=False)
    diagnosis = run.diagnose(progress=False)
    manifest = root / "picks.parquet"
    run.suggest(pool, budget=40, output=str(manifest), progress=False)
    yield {"root": root, "server": server, "client": client, "run": run, "diagnosis": diagnosis,
           "manifest": manifest, "scenario": s, "model": model}
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def report_html(diagnosed):
    """The report written by the console script."""
    path = diagnosed["root"] / "report.html"
    done = subprocess.run([str(BIN), "report", diagnosed["run"].id, "-o", str(path), "--suggestions",
                           str(diagnosed["manifest"]), "--address", f"127.0.0.1:{diagnosed['server'].port}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return path


def test_run_map_sample_matches_the_diagnosis(diagnosed):
    client, run, diagnosis = diagnosed["client"], diagnosed["run"], diagnosed["diagnosis"]
    m = client.get_run_map(run.id, max_points=500)
    assert m.diagnosis_id == diagnosis.id and m.num_samples == 1500
    assert m.projection == "clustering_space"
    pca = client.get_run_map(run.id, max_points=500, projection="pca")
    assert pca.projection == "pca" and 0 < pca.explained_variance <= 1
    assert pca.points["sample_id"].tolist() == m.points["sample_id"].tolist()     # same sample, other layout
    again = client.get_run_map(run.id, max_points=500)
    assert np.array_equal(again.points[["x", "y"]].to_numpy(), m.points[["x", "y"]].to_numpy())
    pts = m.points
    assert 500 <= len(pts) <= 500 + 30 * len(diagnosis.regions)
    assert np.isfinite(pts[["x", "y"]].to_numpy()).all() and pts["sample_id"].is_unique
    per_sample = diagnosed["server"].store.diagnosis_rows(diagnosis.id)
    index = {sid: i for i, sid in enumerate(diagnosed["scenario"].test.ids)}
    rows = [index[sid] for sid in pts["sample_id"]]
    assert pts["region"].tolist() == per_sample.column("region").to_numpy()[rows].tolist()
    assert pts["failed"].tolist() == per_sample.column("failed").to_numpy(zero_copy_only=False)[rows].tolist()
    assert pts["uri"].iloc[0].startswith("file://")
    # Every significant region shows up on the map, even when small.
    assert {r.id for r in diagnosis.regions} <= set(pts["region"])
    with pytest.raises(InvalidArgumentError, match="max_points"):
        client.get_run_map(run.id, max_points=10**6)
    with pytest.raises(InvalidArgumentError, match="projection"):
        client.get_run_map(run.id, projection="umap")


def test_run_map_without_a_diagnosis_marks_mispredictions(diagnosed):
    s, client = diagnosed["scenario"], diagnosed["client"]
    probs = diagnosed["model"].predict_proba(s.test.embeddings[:300])
    run = client.create_run("undiagnosed", class_names=s.class_names, embedding_dim=128)
    run.log_predictions(s.test.ids[:300], s.test.embeddings[:300], labels=s.test.labels[:300], probabilities=probs,
                        progress=False)
    m = client.get_run_map(run.id)
    assert m.diagnosis_id == "" and len(m.points) == 300 and (m.points["region"] == -1).all()
    assert m.projection == "pca"
    pred = probs.argmax(1)
    assert m.points["failed"].tolist() == (pred != s.test.labels[:300]).tolist()


def test_report_is_self_contained(report_html, diagnosed):
    html = report_html.read_text()
    # Nothing is fetched: every src is a data URI, no stylesheet or script links, no url(...).
    assert re.findall(r'(?:src|href)\s*=\s*"(?!data:)', html) == []
    assert "<link" not in html and "<script" not in html and "url(" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert html.count('src="data:image/png;base64,') >= 2
    assert "<svg" in html and "Failure regions" in html and "Suggested samples to label" in html
    d = diagnosed["diagnosis"].message
    for r in d.regions:
        assert f"R{r.id}</td>" in html
    assert f"{d.num_failures}</b> failures" in html


def test_report_renders_in_chromium(report_html, diagnosed, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium package)")
    Image = pytest.importorskip("PIL.Image")
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,2000", report_html.resolve().as_uri()],
                   capture_output=True, timeout=90, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int32)

    # The map: failure rings (#d62728) drawn over a block that is not blank page.
    red = (np.abs(pixels - np.array([214, 39, 40])).sum(axis=2) < 60)
    assert red.sum() > 100, "no failure markers on the map"
    ys, xs = np.nonzero(red)
    box = pixels[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert box.shape[0] > 150 and box.shape[1] > 150
    assert (np.abs(box - 255).sum(axis=2) > 30).mean() > 0.05, "the map area is blank"

    # A thumbnail: the most common colour of one typical failure's image appears as a block.
    uri = diagnosed["diagnosis"].message.regions[0].typical_failures[0].uri
    thumb = np.asarray(Image.open(local_image_path(uri)).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(thumb, axis=0, return_counts=True)
    colour = colours[counts.argmax()]
    near = (np.abs(pixels - colour.astype(np.int32)).sum(axis=2) <= 6).sum()
    assert near >= 200, f"thumbnail colour {colour.tolist()} not found in the screenshot"
    if os.environ.get("BLINDSPOTS_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["BLINDSPOTS_KEEP_SCREENSHOT"])


def test_image_data_uris_embed_local_images_only(tmp_path):
    png = encode_png(render_listing(np.zeros(16), label=1, dark=False, watermark=True))
    path = tmp_path / "a b.png"
    path.write_bytes(png)
    assert image_data_uri(str(path)).startswith("data:image/png;base64,")
    assert image_data_uri(path.resolve().as_uri()).startswith("data:image/png;base64,")   # "a%20b.png"
    jpeg = tmp_path / "x.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    assert image_data_uri(str(jpeg)).startswith("data:image/jpeg;base64,")
    (tmp_path / "notes.png").write_text("not an image")
    for uri in (str(tmp_path / "notes.png"), str(tmp_path / "missing.png"), "https://example.com/a.png",
                "synthetic://test/1.png", ""):
        assert image_data_uri(uri) is None


def test_convex_hull_keeps_the_corners():
    pts = np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1], [1, 0.5]], dtype=float)
    hull = convex_hull(pts)
    assert {tuple(p) for p in hull} == {(0, 0), (2, 0), (2, 2), (0, 2)}


def test_a_stored_suggestion_set_makes_the_same_report_as_its_manifest(diagnosed, report_html):
    """`report --suggestion-set SET` fetches the set from the server: the report equals the one
    written from the manifest file `suggest` wrote for that set (but for the time it was written)."""
    set_id = diagnosed["client"].list_suggestion_sets(diagnosed["run"])["id"].iloc[0]
    path = diagnosed["root"] / "from_set.html"
    address = ["--address", f"127.0.0.1:{diagnosed['server'].port}"]
    done = subprocess.run([str(BIN), "report", diagnosed["run"].id, "-o", str(path), "--suggestion-set", set_id,
                           *address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def without_time(html: str) -> str:
        return re.sub(r"written \d{4}-\d\d-\d\d \d\d:\d\d", "written", html)
    assert without_time(path.read_text()) == without_time(report_html.read_text())
    both = subprocess.run([str(BIN), "report", diagnosed["run"].id, "-o", str(path), "--suggestion-set", set_id,
                           "--suggestions", str(diagnosed["manifest"]), *address], capture_output=True, text=True)
    assert both.returncode == 2 and "not both" in both.stderr
