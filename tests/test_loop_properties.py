"""The whole loop through a real server on generated small runs and pools.

Degenerate data a pipeline may send (two classes, no failure or all, duplicate or
constant embeddings, missing metadata, a pool without probabilities, a pool smaller
than the budget) goes through ingest, diagnose, summary, region members, both maps,
every Suggest strategy, labels imported and left out, metadata filters, a second
model version on part of the same test set (compare, tracked slices) and the HTML
report, on the embedded store and on PostgreSQL: each answer is OK or a definite
client status, never a server fault, and the answers agree with each other.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from blindspots import Client, FailedPreconditionError, InvalidArgumentError
from blindspots.report import write_report
from blindspots_server.core.pool_filters import predicate_mask
from blindspots_server.core.results import Predicate

from conftest import start_server

DIM = 6
EXAMPLES = itertools.count()     # one project per example: tracked slices stay within it
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def live(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    overrides = {}
    if request.param == "postgres":            # the same loop on the PostgreSQL store
        import pgtest
        overrides = {"store": pgtest.fresh_schema(request.getfixturevalue("postgres_database")),
                     "files": str(root / "files")}
    srv = start_server(root / "data", **overrides)
    with Client(f"127.0.0.1:{srv.port}") as client:
        yield client, tmp_path_factory.mktemp("reports")
    srv.stop()


def _rows(rng, n: int, classes: int, shape: str, error: float):
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    if shape == "constant":
        emb[:] = 1.0
    elif shape == "duplicates":
        emb[: n // 2] = emb[0]
    labels = rng.integers(0, classes, n)
    wrong = rng.random(n) < error
    group = np.zeros(n, dtype=bool)
    if shape == "clusters":                 # a group apart that fails, on one site: a region and a slice
        group = rng.random(n) < 0.15
        emb[group] += 8.0
        wrong |= group & (rng.random(n) < 0.8)
    predicted = np.where(wrong, (labels + 1) % classes, labels)
    probs = np.full((n, classes), 0.2 / classes, dtype=np.float32)
    probs[np.arange(n), predicted] += 0.8
    probs /= probs.sum(1, keepdims=True)
    meta = pd.DataFrame({
        "site": pd.Series(np.where(group, "c", rng.choice(["a", "b", None], n)), dtype=object),
        "hour": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 24, n).astype(float)),
        "at": pd.Series(pd.Timestamp("1969-12-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s"))
        .where(rng.random(n) > 0.1)})
    return emb, labels, probs, meta


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([1, 7, 60, 400, 1500, 1500]),
       classes=st.sampled_from([2, 3]),
       shape=st.sampled_from(["spread", "constant", "duplicates", "clusters", "clusters", "clusters"]),
       error=st.sampled_from([0.0, 0.1, 1.0]), pool_n=st.sampled_from([1, 30, 300]), pool_probs=st.booleans(),
       budget=st.sampled_from([1, 25, 500]))
def test_any_small_run_goes_through_the_loop(live, seed, n, classes, shape, error, pool_n, pool_probs, budget):
    client, reports = live
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(classes)]
    project = f"loop{next(EXAMPLES)}"
    run = client.create_run(f"r{seed}", class_names=names, embedding_dim=DIM, project=project,
                            model_name="m", model_version="v1")
    emb, labels, probs, meta = _rows(rng, n, classes, shape, error)
    ids = [f"t{i}" for i in range(n)]
    run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=meta, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the SDK warns of notes (fallbacks, short pools)
        d = run.diagnose(progress=False)
        m = d.message
        event(f"regions: {min(len(m.regions), 2)}")
        assert m.num_samples == n and m.num_failures == int((probs.argmax(1) != labels).sum())
        assert len(m.regions) <= m.num_regions_tested
        d.summary()
        frame = d.to_frame()
        assert len(frame) == len(d.regions)
        for r in m.regions:
            members = d.region_members(r.id)
            assert len(members) == r.support and int(members["failed"].sum()) == r.failures
        run_map = client.get_run_map(run.id)
        assert run_map.num_samples == n
        pemb, _, pprobs, pmeta = _rows(rng, pool_n, classes, "spread", 0.3)
        pool = client.create_pool(f"p{seed}", embedding_dim=DIM, num_classes=classes if pool_probs else 0,
                                  project=project)
        pool.add([f"p{i}" for i in range(pool_n)], pemb, probabilities=pprobs if pool_probs else None,
                 metadata=pmeta, progress=False)
        for strategy in ("targeted", "margin", "entropy", "kcenter", "random"):
            try:
                picks = run.suggest(pool, budget, strategy=strategy, allow_repeats=True)
            except InvalidArgumentError as err:      # a definite client status, naming the field
                assert strategy in ("margin", "entropy") and not pool_probs and "strategy" in str(err), err
                continue
            assert len(picks) == min(budget, pool_n)
            assert picks["sample_id"].is_unique
        # Label the first picks: the next Suggest leaves them out and counts them.
        labelled = picks["sample_id"].head(max(1, len(picks) // 2))
        pool.import_labels(pd.DataFrame({"sample_id": labelled, "label": names[0]}))
        assert set(pool.labels()["sample_id"]) == set(labelled)
        again = run.suggest(pool, budget, strategy="random", allow_repeats=True)
        assert not set(again["sample_id"]) & set(labelled)
        assert len(again) == min(budget, pool_n - len(labelled))
        assert again.attrs["exclusions"]["labeled"] == len(labelled)
        # Metadata filters: every pick satisfies them, and the eligible count is the rows that do.
        pids = np.array([f"p{i}" for i in range(pool_n)])
        wanted = (pmeta["site"] == "a").to_numpy() & (pmeta["hour"] < 12).to_numpy()
        wanted &= ~np.isin(pids, labelled.to_numpy())
        kept = run.suggest(pool, budget, strategy="random", allow_repeats=True,
                           filters=[("site", "==", "a"), ("hour", "<", 12)])
        assert set(kept["sample_id"]) <= set(pids[wanted]) and len(kept) == min(budget, int(wanted.sum()))
        assert kept.attrs["exclusions"]["eligible"] == int(wanted.sum())
        pca = client.get_run_map(run.id, projection="pca", max_points=50)
        assert len(pca.points) <= n and np.isfinite(pca.points[["x", "y"]].to_numpy()).all()
        # The next version, evaluated on part of the same test set and on rows of its own.
        other = client.create_run(f"r{seed}b", class_names=names, embedding_dim=DIM, project=project,
                                  model_name="m", model_version="v2")
        keep = rng.random(n) < 0.7
        extra = int(rng.integers(0 if keep.any() else 1, 20))      # a run holds one row at least
        other_meta = pd.concat([meta[keep], meta.iloc[:0].reindex(range(extra))], ignore_index=True)
        other.log_predictions([i for i, k in zip(ids, keep) if k] + [f"x{i}" for i in range(extra)],
                              np.vstack([emb[keep], np.zeros((extra, DIM), np.float32)]),
                              labels=np.concatenate([labels[keep], np.zeros(extra, np.int64)]),
                              probabilities=np.vstack([probs[keep][:, ::-1], np.full((extra, classes), 1 / classes)]),
                              metadata=other_meta, progress=False)
        diagnosis = other.diagnose(progress=False)
        tracked = diagnosis.message.tracked_slices
        event(f"tracked slices: {min(len(tracked), 1)}")
        for t in tracked:      # v1's slices measured on v2's rows
            rows = predicate_mask(other_meta, tuple(Predicate(q.column, q.op, q.value, q.low, q.high)
                                                    for q in t.predicates))
            assert t.support == int(rows.sum()) and 0 <= t.failures <= t.support
        if keep.any():
            comparison = client.compare(run, other)
            m = comparison.message
            assert (m.num_shared, m.num_only_a, m.num_only_b) == (int(keep.sum()), int((~keep).sum()), extra)
            assert diagnosis.previous_version.message == m     # compared with v1 as it was diagnosed
        else:
            assert diagnosis.previous_version is None
            with pytest.raises(FailedPreconditionError, match="share no sample ids"):
                client.compare(run, other)
        write_report(client, run.id, reports / f"{seed}.html", compare_with=other.id if keep.any() else "")
