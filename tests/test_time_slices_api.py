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
        run.log_predictions([f"r{i}" for i in range(len(labels))], emb, labels=labels,
                            probabilities=_probs(labels, wrong, rng),
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

    # Suggestion reasons name the region's slice the same way.
    pool_meta, pool_labels, pool_emb, *_ = _rows(n=3000, seed=4)
    pool = client.create_pool("pool", embedding_dim=16, project="time")
    pool.add([f"p{i}" for i in range(len(pool_labels))], pool_emb, metadata=pool_meta, progress=False)
    picks = runs["v1"].suggest(pool, budget=60, diagnosis_id=v1.id, progress=False)
    reasons = " ".join(picks["reason"]) + " ".join(picks["slice"])
    assert SEASON in reasons and "listed_at >= 2025-07-01" in reasons and not RAW_MICROS.search(reasons)

    metrics = generate_latest(server.telemetry.registry).decode()
    labelled = [line for line in metrics.splitlines()
                if line.startswith(("blindspots_slice_error_rate{", "blindspots_region_error_rate{"))]
    assert any(f'slice="{SEASON}"' in line for line in labelled)
    assert any(ISO_RANGE.search(line) for line in labelled), labelled
    assert not any(RAW_MICROS.search(line.rsplit(" ", 1)[0]) for line in labelled)


def test_slices_stored_before_iso_names_are_tracked_under_todays_names(tmp_path):
    """A diagnosis stored with the old naming (a timestamp range as op "range" printed in
    microseconds, a month as "month(t)=3") is followed under today's names."""
    import math

    import pyarrow as pa

    from blindspots.v1 import blindspots_pb2 as pb
    from blindspots_server.core.results import slice_name
    from blindspots_server.server.slice_tracking import slices_to_track
    from blindspots_server.storage import DiagnosisRecord, EmbeddedStore, RunRecord
    from blindspots_server.storage.rows import build_table

    store = EmbeddedStore(tmp_path / "data")
    runs = []
    for version in ("v1", "v2"):
        run = store.create_run(RunRecord(id=f"run_{version}", name=version, project="p", model_name="m",
                                         model_version=version, dataset_name="", class_names=["a", "b"],
                                         embedding_dim=2, created_at=float(len(runs))))
        table = build_table(["x", "y"], np.zeros((2, 2)), np.array([0, 1]), np.full((2, 2), 0.5), None,
                            {"listed_at": ("timestamp", pa.array([0, 86_400_000_000], pa.timestamp("us")))})
        store.ingest_batch("run", run.id, "b1", table, {"listed_at": "timestamp"})
        runs.append(store.get_run(run.id))
    old = pb.Diagnosis(id="diag_old", run_id="run_v1", slices=[
        pb.Slice(name="listed_at in [-inf, 1.748e+15)", predicates=[pb.Predicate(
            column="listed_at", op="range", low=-math.inf, high=1.748e15, text="listed_at in [-inf, 1.748e+15)")]),
        pb.Slice(name="month(listed_at)=3", predicates=[pb.Predicate(column="listed_at", op="month", value="3",
                                                                     text="month(listed_at)=3")])])
    store.save_diagnosis(DiagnosisRecord("diag_old", "run_v1", 0.0, "", old.SerializeToString()),
                         pa.table({"region": pa.array([-1, -1], pa.int32()), "failed": [False, True]}))
    tracked = slices_to_track(store, runs[1], per_run=5, limit=10, exclude={"month(listed_at)=Mar"})
    assert [slice_name(t) for t in tracked] == ["listed_at < 2025-05-23T11:33:20"]
    assert tracked[0][0].op == "time_range" and tracked[0][0].high == 1.748e15
    store.close()
