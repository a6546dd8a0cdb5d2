"""The report's map on the demo scenario: region outlines overlap far less in the clustering
space's layout than in today's PCA map (measured on the polygons the report's SVG draws)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from blindspots import Client
from blindspots.report import write_report
from blindspots_scenarios.listings import make_scenario, train_model
from conftest import start_server

POLYGON = re.compile(r'<polygon points="([^"]+)" fill="(#[0-9a-f]{6})"')


def _polygons(html: str) -> list[np.ndarray]:
    svg = html[html.index('<svg class="map"'):html.index("</svg>")]
    return [np.array([[float(v) for v in p.split(",")] for p in pts.split()]) for pts, _ in POLYGON.findall(svg)]


def _inside(hull: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points inside a convex polygon, whichever way round its vertices run."""
    signs = []
    for a, b in zip(hull, np.roll(hull, -1, axis=0)):
        signs.append((b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]))
    signs = np.stack(signs)
    return (signs >= 0).all(axis=0) | (signs <= 0).all(axis=0)


def overlap_share(polygons: list[np.ndarray], width: int = 760, height: int = 540) -> float:
    """Share of the map area covered by any region outline that two or more outlines cover."""
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1)
    cover = sum(_inside(p, pts).astype(np.int32) for p in polygons)
    return float((cover >= 2).sum() / max((cover >= 1).sum(), 1))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's scenario (``blindspots demo --quick``: seed 0, 4000 train / 5000 test) and model."""
    root = tmp_path_factory.mktemp("map")
    s = make_scenario(n_train=4000, n_test=5000, n_pool=100, seed=0)
    model = train_model(s.train, seed=0)
    server = start_server(root / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    run = client.create_run("demo-eval", class_names=s.class_names, embedding_dim=128, model_name="listings-mlp")
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels,
                        probabilities=model.predict_proba(s.test.embeddings),
                        metadata=s.test.metadata, uris=s.test.uris, progress=False)
    diagnosis = run.diagnose(progress=False)
    yield root, client, run, diagnosis
    client.close()
    server.stop()


def test_regions_overlap_less_on_the_clustering_space_map(demo):
    root, client, run, diagnosis = demo
    assert len(diagnosis.regions) >= 3
    shares = {}
    for projection in ("pca", ""):
        path = write_report(client, run.id, root / f"report-{projection or 'default'}.html", projection=projection)
        polygons = _polygons(path.read_text())
        assert len(polygons) == len(diagnosis.regions)          # every region is outlined
        shares[projection or "clustering_space"] = overlap_share(polygons)
    print(f"share of outlined area under two or more region outlines: {shares}")
    assert shares["pca"] > 0.3                                   # today's map: outlines pile up
    assert shares["clustering_space"] < shares["pca"] / 3


def test_layout_is_deterministic_and_bounded(demo):
    _, client, run, _ = demo
    first = client.get_run_map(run.id, max_points=1000)
    second = client.get_run_map(run.id, max_points=1000)
    assert first.projection == "clustering_space"
    assert np.array_equal(first.points[["x", "y"]].to_numpy(), second.points[["x", "y"]].to_numpy())
    assert len(first.points) <= 1000 + 30 * 10 and np.isfinite(first.points[["x", "y"]].to_numpy()).all()


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 12, 40])
def test_a_run_of_a_few_rows_gets_a_map(rows):
    # Three rows once asked Lanczos for as many vectors as rows, and the diagnosis job failed INTERNAL.
    from blindspots_server.core.embedding_map import ClusteringSpaceLayout

    space = np.random.default_rng(rows).normal(size=(rows, 4))
    coords = ClusteringSpaceLayout().fit(space)
    assert coords.shape == (rows, 2) and np.isfinite(coords).all()
    assert np.array_equal(coords, ClusteringSpaceLayout().fit(space))
    if rows >= 3:                    # distinct rows get distinct places, not one averaged point
        assert len(np.unique(coords.round(6), axis=0)) > 1
