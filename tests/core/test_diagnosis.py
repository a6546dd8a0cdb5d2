"""Diagnosis on the listings scenario: planted regions recovered, explained and typed."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from blindspots_server.core.diagnosis import Diagnoser
from blindspots_server.core.failure_clusters import FailureClusterer
from blindspots_scenarios.listings import DATA_GAPS, make_scenario, train_model


@pytest.fixture(scope="session")
def diagnosed():
    s = make_scenario(n_train=8000, n_test=10000, n_pool=1000, seed=0)
    probs = train_model(s.train).predict_proba(s.test.embeddings)
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Diagnoser().fit(s.test.embeddings, s.test.labels, probs, s.test.metadata,
                                 s.test.ids, s.test.uris, progress=lambda f, st: calls.append(f))
    return s, probs, result, calls


def _f1(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _best_region(result, condition: np.ndarray, on_failures: bool):
    """The region that best matches a planted condition, and the F1."""
    rows = result.failed if on_failures else np.ones_like(result.failed)
    scored = [(_f1((result.region_of_sample == r.region_id) & rows, condition & rows), r)
              for r in result.regions]
    return max(scored, key=lambda t: t[0]) if scored else (0.0, None)


@pytest.mark.parametrize("name", DATA_GAPS)
def test_data_gaps_are_recovered_as_regions(diagnosed, name):
    s, _, result, _ = diagnosed
    cond = s.test.conditions[name].to_numpy()
    f1_failures, region = _best_region(result, cond, on_failures=True)
    f1_rows, _ = _best_region(result, cond, on_failures=False)
    # The acceptance bar: each planted data gap is recovered as a region with
    # F1 >= 0.8 over all test rows (seen on seed 0: 0.84 / 0.92 / 0.86 for
    # north_cam_e / luxury / dark; on failures only 0.9+).
    assert f1_failures >= 0.8, (name, f1_failures)
    assert f1_rows >= 0.8, (name, f1_rows)
    assert region.kind != "label_noise"
    assert region.error_rate > 3 * result.baseline_error_rate
    assert region.q_value <= result.fdr_alpha


@pytest.mark.parametrize("name", ["north_cam_e", "luxury", "dark", "watermark"])
def test_failure_clusters_match_conditions(diagnosed, name):
    s, _, result, _ = diagnosed
    clusters = FailureClusterer(seed=0).fit(s.test.embeddings, result.failed, s.test.labels)
    cond = s.test.conditions[name].to_numpy()[result.failed]
    best = max(_f1(clusters.cluster_of_failure == k, cond) for k in range(clusters.num_regions))
    assert best >= 0.8, (name, best)      # 0.90 / 0.90 / 0.89 / 0.84 seen on seed 0
    # Every failure HDBSCAN left as noise is voted into a region or kept out; none is lost silently.
    assert clusters.cluster_of_failure.shape == (int(result.failed.sum()),)


def test_watermark_region_is_typed_label_noise(diagnosed):
    s, _, result, _ = diagnosed
    f1, region = _best_region(result, s.test.conditions["watermark"].to_numpy(), on_failures=True)
    assert f1 >= 0.15    # 0.23 seen: only the watermark's failing core forms a significant region
    assert region.kind == "label_noise"
    ev = region.evidence
    assert ev.neighbour_agreement_with_prediction > ev.neighbour_agreement_with_label
    assert ev.mean_failure_confidence > 0.8


def test_north_cam_e_explained_by_camera_and_region(diagnosed):
    s, _, result, _ = diagnosed
    _, region = _best_region(result, s.test.conditions["north_cam_e"].to_numpy(), on_failures=True)
    assert region.explanations[0].name == "camera=cam_e & region=north"
    assert result.slices[0].name == "camera=cam_e & region=north"


def test_luxury_explained_by_a_high_price_range(diagnosed):
    s, _, result, _ = diagnosed
    _, region = _best_region(result, s.test.conditions["luxury"].to_numpy(), on_failures=True)
    first = region.explanations[0]
    (pred,) = first.predicates
    assert pred.column == "price" and pred.op == "range"
    assert 0.9e6 <= pred.low <= 1.3e6 and pred.high == np.inf
    assert first.f1 >= 0.7


def test_statistics_are_consistent(diagnosed):
    _, _, result, _ = diagnosed
    assert result.num_samples == 10000
    assert result.num_failures == int(result.failed.sum())
    assert result.baseline_ci.low < result.baseline_error_rate < result.baseline_ci.high
    assert result.num_hypotheses_tested >= result.num_regions_tested + len(result.slices)
    excess = [r.excess_errors for r in result.regions]
    assert excess == sorted(excess, reverse=True)
    for r in result.regions:
        members = result.region_of_sample == r.region_id
        assert r.support == members.sum() and r.failures == (members & result.failed).sum()
        assert r.ci.low <= r.error_rate <= r.ci.high
        assert r.p_value <= r.q_value <= result.fdr_alpha
        assert r.confusions and all(c.true_label != c.predicted_label for c in r.confusions)
        assert r.typical_failures and all(e.failed for e in r.typical_failures)
        assert all(e.uri.startswith("synthetic://") for e in r.typical_failures)
    for sl in result.slices:
        assert sl.q_value <= result.fdr_alpha and sl.lift > 1 and sl.score > 0


def test_progress_is_reported_and_params_recorded(diagnosed):
    _, _, result, calls = diagnosed
    assert calls[0] == 0.0 and calls[-1] == 1.0 and calls == sorted(calls) and len(calls) > 5
    for key in ("min_cluster_size", "min_samples", "reduce_to", "min_slice_support", "fdr_alpha"):
        assert key in result.params


def test_progress_exception_cancels(diagnosed):
    s, probs, _, _ = diagnosed

    class Cancelled(Exception):
        pass

    def cancel(fraction, stage):
        if fraction > 0.3:
            raise Cancelled(stage)

    with pytest.raises(Cancelled):
        Diagnoser().fit(s.test.embeddings[:2000], s.test.labels[:2000], probs[:2000],
                        s.test.metadata.iloc[:2000], progress=cancel)


def test_top_loss_failures_and_no_metadata(diagnosed):
    s, probs, _, _ = diagnosed
    n = 3000
    result = Diagnoser(failure_definition="top_loss", top_loss_quantile=0.2).fit(
        s.test.embeddings[:n], s.test.labels[:n], probs[:n])
    assert result.num_failures == int(0.2 * n)
    assert result.slices == [] and all(r.explanations == [] for r in result.regions)


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=np.zeros(99, dtype=int)), "labels has 99"),
    (dict(embeddings=np.zeros(100)), "embeddings must be 2-D"),
    (dict(labels=np.full(100, 7)), "labels must lie in"),
    (dict(metadata=pd.DataFrame({"a": range(5)})), "metadata has 5 rows"),
    (dict(uris=np.array(["x"])), "uris has 1"),
    (dict(metadata=pd.DataFrame({"price": [1.0] * 99 + [np.inf]})), "column 'price' has infinite"),
])
def test_invalid_input_names_the_argument(kwargs, message):
    rng = np.random.default_rng(0)
    args = dict(embeddings=rng.normal(size=(100, 8)), labels=rng.integers(0, 3, 100),
                probabilities=rng.dirichlet(np.ones(3), 100))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Diagnoser().fit(**args)


def test_invalid_parameters_rejected():
    with pytest.raises(ValueError, match="failure_definition"):
        Diagnoser(failure_definition="wrong").fit(np.zeros((3, 2)), np.zeros(3, int), np.ones((3, 1)))


def test_explanation_precision_and_recall_describe_the_region_reported(diagnosed):
    # Regions grow into their top slice after they are explained: the numbers a report
    # shows must be those of the rows the region holds in the end.
    from blindspots_server.core.pool_filters import predicate_mask

    s, _, result, _ = diagnosed
    checked = 0
    for r in result.regions:
        members = result.region_of_sample == r.region_id
        for e in r.explanations:
            rows = predicate_mask(s.test.metadata, e.predicates)
            both = int((rows & members).sum())
            assert e.support == int(rows.sum())
            assert (e.precision, e.recall) == pytest.approx((both / rows.sum(), both / members.sum()))
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("angle", np.linspace(0, np.pi, 7))
def test_the_spectral_embedding_of_a_graph_in_two_pieces_keeps_what_tells_them_apart(monkeypatch, angle):
    """A tight group of failures apart from the rest makes a kNN graph in two pieces, whose top
    eigenvalue (1) repeats. scipy's eigsh may then return any orthonormal basis of that space, in
    any order (which one depends on its start vector and the machine's arithmetic: on one machine
    it dropped the piece indicator and a region of 80 failures went unfound). Each basis here is
    one eigsh may return; the embedding must hold the piece indicator for every one."""
    from scipy.sparse.linalg import eigsh
    from blindspots_server.core import failure_clusters, spectral

    def any_basis(matrix, **kwargs):
        values, vectors = eigsh(matrix, **kwargs)
        top = np.flatnonzero(np.isclose(values, values.max(), atol=1e-8))
        assert len(top) == 2, "the graph should be in two pieces"
        c, s = np.cos(angle), np.sin(angle)
        vectors[:, top] = vectors[:, top] @ np.array([[c, -s], [s, c]])
        return values, vectors
    monkeypatch.setattr(spectral, "eigsh", any_basis)
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(size=(40, 8)) * 0.3 + 5, rng.normal(size=(80, 8))]).astype(np.float32)
    embedded = failure_clusters.spectral_embedding(points, 10, 4, 0)
    a, b = embedded[:40], embedded[40:]
    # The pieces lie apart at the scale HDBSCAN sees: their centres farther apart than the
    # pieces' own spread (a piece indicator kept only as a trace in a near-constant column is not).
    spread = np.sqrt(np.mean(np.r_[((a - a.mean(0)) ** 2).sum(1), ((b - b.mean(0)) ** 2).sum(1)]))
    assert np.linalg.norm(a.mean(0) - b.mean(0)) > 1.0 * spread
