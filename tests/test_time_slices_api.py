"""Timestamp slices through a real server: a season found and tracked into the version
that fixed it, and ISO dates (never raw microseconds) in the summary, the report and
the metric labels."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from prometheus_client import generate_latest

from blindspots.report import write_report

SEASON = "camera=cam_b & month(listed_at) in Dec-Feb"
ISO_RANGE = re.compile(r"listed_at (< |>= |in \[)\d{4}-\d{2}-\d{2}")
RAW_MICROS = re.compile(r"\d\.\d+e\+1[45]")


def _rows(n: int = 6000, seed: int = 3):
    """Two years of listings; failures in winter (Dec-Feb, both years) on cam_b, and
    on cam_e since 2025-07-01; both groups sit apart in embedding space."""
    rng = np.random.default_rng(seed)
    listed_at = np.datetime64("2024-01-01") + rng.integers(0, 731 * 86400, n).astype("timedelta64[s]")
    meta = pd.DataFrame({"camera": rng.choice(["cam_a", "cam_b", "cam_c", "cam_d", "cam_e"], n),
                         "region": rng.choice(["north", "south", "east", "west"], n),
                         "listed_at": listed_at.astype("datetime64[us]")})
    t = meta.listed_at
    season = (t.dt.month.isin([12, 1, 2]) & (meta.camera == "cam_b")).to_numpy()
    recent = ((t >= "2025-07-01") & (meta.camera == "cam_e")).to_numpy()
    labels = rng.integers(0, 3, n)
    emb = rng.normal(0, 4, (3, 16))[labels] + rng.normal(0, 1, (n, 16))
    for cond in (season, recent):
        offset = rng.normal(0, 1, 16)
        emb[cond] += 6 * offset / np.linalg.norm(offset)
    return meta, labels, emb.astype(np.float32), season, recent, rng


def _probs(labels, wrong, rng):
    predicted = np.where(wrong, (labels + rng.integers(1, 3, len(labels))) % 3, labels)
    probs = np.full((len(labels), 3), 0.1, dtype=np.float32)
    probs[np.arange(len(labels)), predicted] = 0.8
    return probs


def test_seasons_and_dates_read_as_dates_everywhere(server, client, tmp_path):
    meta, labels, emb, season, recent, rng = _rows()
    noise = rng.random(len(labels)) < 0.04
    hit = rng.random(len(labels)) < 0.85
    diagnoses, runs = {}, {}
    # v2 fixes the winter failures and keeps the others.
    for version, wrong in (("v1", noise | ((season | recent) & hit)), ("v2", noise | (recent & hit))):
        run = client.create_run(f"eval-{version}", class_names=["a", "b", "c"], embedding_dim=16,
                                model_name="seasonal", model_version=version, project="time")
        run.log_predictions([f"r{i}" for i in range(len(labels))], labels, _probs(labels, wrong, rng), emb,
                            metadata=meta, progress=False)
        runs[version], diagnoses[version] = run, run.diagnose(progress=False)
    v1, v2 = diagnoses["v1"], diagnoses["v2"]

    # The season is a top slice and explains a region of v1.
    assert SEASON in {s.name for s in v1.slices}
    explanations = {r.explanations[0].name for r in v1.regions if r.explanations}
    assert SEASON in explanations, explanations
    # The date cause is named with its ISO date: the tailored cut falls on the midnight.
    assert "camera=cam_e & listed_at >= 2025-07-01" in explanations, explanations

    # Tracked into v2 through the stored predicate: measured again, now without failures.
    tracked = {s.name: s for s in v2.tracked_slices}
    assert SEASON in tracked and SEASON not in {s.name for s in v2.slices}
    assert tracked[SEASON].support == int(season.sum())
    assert tracked[SEASON].failures <= int((noise & season).sum())

    summary = v1.summary()
    assert SEASON in summary and ISO_RANGE.search(summary) and not RAW_MICROS.search(summary), summary

    html = write_report(client, runs["v1"].id, tmp_path / "report.html").read_text()
    assert "month(listed_at) in Dec-Feb" in html and ISO_RANGE.search(html)
    assert not RAW_MICROS.search(html)

    metrics = generate_latest(server.telemetry.registry).decode()
    labelled = [line for line in metrics.splitlines()
                if line.startswith(("blindspots_slice_error_rate{", "blindspots_region_error_rate{"))]
    assert any(f'slice="{SEASON}"' in line for line in labelled)
    assert any(ISO_RANGE.search(line) for line in labelled), labelled
    assert not any(RAW_MICROS.search(line.rsplit(" ", 1)[0]) for line in labelled)
