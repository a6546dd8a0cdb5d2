"""Version comparison: v1, then v2 retrained with v1's targeted picks labeled, on the same test set."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from google.protobuf import json_format
from hypothesis import strategies as st

from blindspots import Client, FailedPreconditionError, InvalidArgumentError
from blindspots.v1 import blindspots_pb2 as pb
from blindspots.report import write_report
from blindspots_server.core.version_comparison import VersionComparer, rate_change
from blindspots_server.server.comparison import regressions
from blindspots_scenarios.listings import make_scenario, train_model
from conftest import start_server

BIN = Path(sys.executable).parent / "blindspots"


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    s = make_scenario(n_train=3000, n_test=4000, n_pool=8000, seed=4)
    v1 = train_model(s.train, seed=4, epochs=20)
    server = start_server(tmp_path_factory.mktemp("compare") / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)

    def log(version: str, model):
        run = client.create_run(f"listings-{version}", class_names=s.class_names, embedding_dim=128,
                                model_name="listings-mlp", model_version=version)
        run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels,
                            probabilities=model.predict_proba(s.test.embeddings),
                            metadata=s.test.metadata, uris=s.test.uris, progress=False)
        return run, run.diagnose(progress=False)

    run1, diag1 = log("v1", v1)
    pool = client.create_pool("pool", embedding_dim=128, num_classes=len(s.class_names))
    pool.add(s.pool.ids, s.pool.embeddings, probabilities=v1.predict_proba(s.pool.embeddings),
             metadata=s.pool.metadata, progress=False)
    picks = run1.suggest(pool, budget=600, progress=False)
    added = s.pool.subset(np.flatnonzero(np.isin(s.pool.ids, picks["sample_id"].to_numpy())))
    added.labels = added.true_labels
    run2, diag2 = log("v2", train_model(s.train.concat(added), seed=4, epochs=20))
    yield {"s": s, "server": server, "client": client, "runs": (run1, run2), "diagnoses": (diag1, diag2)}
    client.close()
    server.stop()


def test_retraining_on_the_picks_fixes_data_gap_regions(versions):
    s, client = versions["s"], versions["client"]
    run1, run2 = versions["runs"]
    diag1, diag2 = versions["diagnoses"]
    c = client.compare(run1, run2)
    m = c.message
    assert m.num_shared == 4000 and m.num_only_a == 0 and m.diagnosis_id_b == diag2.id
    assert m.overall.error_rate_a == pytest.approx(diag1.baseline_error_rate)
    assert m.overall.error_rate_b == pytest.approx(diag2.baseline_error_rate)
    regions = c.regions_frame()
    # Every region of either diagnosis is accounted for exactly once.
    assert sorted(regions.loc[regions.region_a >= 0, "region_a"]) == sorted(r.id for r in diag1.regions)
    assert sorted(regions.loc[regions.region_b >= 0, "region_b"]) == sorted(r.id for r in diag2.regions)
    fixed = regions[regions.status == "fixed"]
    assert len(fixed) >= 1, c.summary()
    # Fixed means: far fewer errors on the same rows, significantly.
    assert (fixed.difference < 0).all() and (fixed.p_value < 0.05).all() and (fixed.diff_high < 0).all()
    # The rows' error rates are what the two per-row diagnosis tables say.
    per1 = versions["server"].store.diagnosis_rows(diag1.id)
    per2 = versions["server"].store.diagnosis_rows(diag2.id)
    r = int(fixed.region_a.iloc[0])
    rows = per1.column("region").to_numpy() == r
    f1 = per1.column("failed").to_numpy(zero_copy_only=False)
    f2 = per2.column("failed").to_numpy(zero_copy_only=False)
    assert fixed.failures_a.iloc[0] == f1[rows].sum() and fixed.failures_b.iloc[0] == f2[rows].sum()
    # A planted failing slice's error rate dropped significantly.
    slices = c.slices_frame()
    assert len(slices) > 0
    gap = s.test.in_data_gap
    assert slices.difference.iloc[0] < 0 and slices.q_value.iloc[0] < 0.05
    assert (f2[gap].mean() < f1[gap].mean())
    text = c.summary()
    assert "fixed" in text and "->" in text


def test_compare_cli_and_errors(versions, tmp_path):
    client = versions["client"]
    run1, run2 = versions["runs"]
    done = subprocess.run([str(BIN), "compare", run1.id, run2.id, "-o", str(tmp_path / "regions.csv"),
                           "--address", f"127.0.0.1:{versions['server'].port}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "v1 -> v2 on 4000 shared test rows" in done.stdout and (tmp_path / "regions.csv").exists()
    report = tmp_path / "report.html"
    done = subprocess.run([str(BIN), "report", run2.id, "-o", str(report), "--compare-with", run1.id,
                           "--address", f"127.0.0.1:{versions['server'].port}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    html = report.read_text()
    counts = client.compare(run1, run2).status_counts()
    assert "<h2>Compared with v1</h2>" in html and f"<b>{counts['fixed']}</b> fixed" in html
    assert html.count(">fixed</span>") == counts["fixed"] and html.count(">new</span>") == counts["new"]
    compared_classes = html.split("<h3>Classes, v1 → v2</h3>")[1].split("</table>")[0]
    worst_first = client.compare(run1, run2).classes_frame()["class"][::-1].tolist()
    assert [compared_classes.index(f"<td>{c}</td>") for c in worst_first] == sorted(
        compared_classes.index(f"<td>{c}</td>") for c in worst_first)
    other = client.create_run("other-test-set", class_names=versions["s"].class_names, embedding_dim=128)
    rng = np.random.default_rng(0)
    other.log_predictions([f"x{i}" for i in range(300)], rng.normal(size=(300, 128)), labels=rng.integers(0, 3, 300),
                          probabilities=rng.dirichlet(np.ones(len(versions["s"].class_names)), 300), progress=False)
    with pytest.raises(FailedPreconditionError, match="has no diagnosis yet"):
        client.compare(run1, other)
    other.diagnose(progress=False)
    with pytest.raises(FailedPreconditionError, match="share no sample ids"):
        client.compare(run1, other)
    with pytest.raises(InvalidArgumentError, match="min_overlap"):
        client.compare(run1, run2, min_overlap=2)


def test_the_regression_gate_flags_the_reverse_change_and_exits_3(versions):
    """Compared backwards (v2 -> v1) the planted data gap is a regression: the gate finds it
    (its region, its slice, the overall rate) and the CLI exits 3; forwards, what the gate
    lists is exactly the findings whose rate rose with q <= alpha."""
    client, port = versions["client"], versions["server"].port
    run1, run2 = versions["runs"]
    forward, backward = client.compare(run1, run2), client.compare(run2, run1)
    worse = backward.regressions()
    assert {"overall", "region", "slice"} <= set(worse.scope), worse
    assert (worse.difference > 0).all() and (worse.q_value <= 0.05).all()
    assert worse.difference.is_monotonic_decreasing
    fixed_slices = forward.slices_frame()
    fixed_slices = fixed_slices[(fixed_slices.difference < 0) & (fixed_slices.q_value <= 0.05)]
    assert set(fixed_slices.slice) <= set(worse.loc[worse.scope == "slice", "name"])
    regions = forward.regions_frame()
    assert (regions.q_value >= regions.p_value).all() and (regions.q_value <= 1).all()
    ahead = forward.regressions()
    slices = forward.slices_frame()
    assert set(ahead.loc[ahead.scope == "slice", "name"]) == set(
        slices.loc[(slices.difference > 0) & (slices.q_value <= 0.05), "slice"])
    classes = forward.classes_frame()
    assert sorted(classes["class"]) == sorted(versions["s"].class_names)
    assert classes["support"].sum() == forward.message.num_shared       # every shared row, once
    assert set(ahead.loc[ahead.scope == "class", "name"]) == set(
        classes.loc[(classes.difference > 0) & (classes.q_value <= 0.05), "class"])
    assert "overall" not in set(ahead.scope)
    assert len(backward.regressions(alpha=1e-300)) < len(worse)
    for a, b, code in ((run2, run1, 3), (run1, run2, 3 if len(ahead) else 0)):
        done = subprocess.run([str(BIN), "compare", a.id, b.id, "--fail-on-regression", "--address",
                               f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stdout + done.stderr
        assert ("REGRESSED" in done.stdout) == (code == 3)
    as_json = subprocess.run([str(BIN), "compare", run2.id, run1.id, "--fail-on-regression", "--json", "--address",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert as_json.returncode == 3 and "REGRESSED" in as_json.stderr, as_json.stdout + as_json.stderr
    assert json_format.ParseDict(json.loads(as_json.stdout), pb.RunComparison()) == backward.message


def test_comparer_statuses_on_constructed_rows():
    # 1000 rows: region 0 of A is fixed (B fails none of it), region 1 stays (same rows in B),
    # B has a new region 5 where A was fine.
    n = 1000
    region_a = np.full(n, -1)
    region_a[:100], region_a[100:200] = 0, 1
    region_b = np.full(n, -1)
    region_b[100:190], region_b[500:600] = 3, 5
    failed_a = np.zeros(n, bool)
    failed_a[:60] = failed_a[100:160] = True
    failed_b = np.zeros(n, bool)
    failed_b[100:150] = failed_b[500:560] = True
    classes = [("zero", np.arange(n) < 100), ("rest", np.arange(n) >= 100)]
    result = VersionComparer().fit(region_a, region_b, failed_a, failed_b, [("s", region_a == 0)], classes)
    by = {(c.region_a, c.region_b): c for c in result.regions}
    assert by[(0, -1)].status == "fixed" and by[(0, -1)].rows.error_rate_b == 0
    assert by[(1, 3)].status == "remains" and by[(1, 3)].jaccard == pytest.approx(0.9)
    assert by[(-1, 5)].status == "new" and by[(-1, 5)].rows.difference == pytest.approx(0.6)
    assert result.slices[0].rows.difference == pytest.approx(-0.6)
    assert [c.name for c in result.classes] == ["zero", "rest"]
    assert result.classes[0].rows.difference == pytest.approx(-0.6) and result.classes[0].rows.support == 100
    # Slices and classes share one Benjamini-Hochberg family: the class "zero" and the slice "s" hold
    # the same rows, so the same p-value, and the same q-value.
    assert result.classes[0].q_value == result.slices[0].q_value
    # Equal rates: no difference, p = 1, the interval straddles 0.
    same = rate_change(failed_a[:200], failed_a[:200])
    assert same.difference == 0 and same.p_value == pytest.approx(1.0)
    assert same.difference_ci.low < 0 < same.difference_ci.high


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(-1, 3), st.integers(-1, 3)),
                min_size=1, max_size=300))
def test_comparison_numbers_agree_whatever_the_rows(rows):
    failed_a, failed_b, region_a, region_b = (np.array(c) for c in zip(*rows))
    change = rate_change(failed_a, failed_b)
    assert change.ci_a.low <= change.error_rate_a <= change.ci_a.high
    assert change.ci_b.low <= change.error_rate_b <= change.ci_b.high
    assert change.difference_ci.low <= change.difference <= change.difference_ci.high
    assert 0.0 <= change.p_value <= 1.0
    back = rate_change(failed_b, failed_a)          # B vs A mirrors A vs B
    assert back.difference == -change.difference and back.p_value == pytest.approx(change.p_value)
    assert back.difference_ci.low == pytest.approx(-change.difference_ci.high)
    result = VersionComparer().fit(region_a, region_b, failed_a, failed_b)
    # Every region of A is reported once; every region of B once at most, matched or new.
    assert sorted(c.region_a for c in result.regions if c.region_a >= 0) == sorted(set(region_a[region_a >= 0]))
    b_ids = [c.region_b for c in result.regions if c.region_b >= 0]
    assert sorted(b_ids) == sorted(set(region_b[region_b >= 0]))
    for c in result.regions:
        assert (c.status == "new") == (c.region_a == -1)
        assert c.status != "fixed" or (c.rows.difference < 0 and c.rows.p_value < 0.05)
    # Region q-values: Benjamini-Hochberg over the compared regions (scipy's, as an independent check).
    if result.regions:
        from scipy.stats import false_discovery_control
        np.testing.assert_allclose([c.q_value for c in result.regions],
                                   false_discovery_control([c.rows.p_value for c in result.regions], method="bh"),
                                   rtol=1e-12, atol=0)


def test_each_diagnosis_is_compared_with_the_previous_version(versions, tmp_path):
    """v2's diagnosis carries the comparison CompareRuns makes of v1 and v2; v1's has none (no
    earlier version). The server's count of regressions (its metrics and alerts) is the SDK's
    regression gate, forwards and backwards."""
    client = versions["client"]
    run1, run2 = versions["runs"]
    diag1, diag2 = versions["diagnoses"]
    assert diag1.previous_version is None
    assert diag2.previous_version.message == client.compare(run1, run2).message
    assert "against the previous version v1 on 4000 shared rows" in diag2.summary()
    # The report shows what changed since the previous version without being told which it is.
    html = write_report(client, run2.id, tmp_path / "v2.html").read_text()
    assert "<h2>Compared with v1</h2>" in html and "Compared with" not in write_report(
        client, run1.id, tmp_path / "v1.html", diagnosis_id=diag1.id).read_text()
    for a, b in ((run1, run2), (run2, run1)):
        c = client.compare(a, b)
        gate = c.regressions()
        assert regressions(c.message) == list(zip(gate.scope, gate.name, gate.difference))


def test_diagnose_gates_on_the_previous_version(versions):
    """`blindspots diagnose RUN --fail-on-regression` exits 3 exactly when the comparison made
    with the diagnosis finds something worse, listing it; a first version passes, saying why."""
    port = versions["server"].port
    run1, run2 = versions["runs"]
    worse = versions["diagnoses"][1].previous_version.regressions()
    for run, code, says in ((run1, 0, "no previous version"), (run2, 3 if len(worse) else 0,
                                                              "REGRESSED" if len(worse) else "no significant")):
        done = subprocess.run([str(BIN), "diagnose", run.id, "--latest", "--fail-on-regression", "--address",
                               f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
        assert done.returncode == code and says in done.stdout, done.stdout + done.stderr
        assert all(name in done.stdout for name in worse.name) if code else True
        # --json: the same gate and exit code; stdout holds the Diagnosis alone, the gate's lines stderr.
        as_json = subprocess.run([str(BIN), "diagnose", run.id, "--latest", "--fail-on-regression", "--json",
                                  "--address", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
        assert as_json.returncode == code and says in as_json.stderr, as_json.stdout + as_json.stderr
        shown = json_format.ParseDict(json.loads(as_json.stdout), pb.Diagnosis())
        assert shown == versions["client"].get_diagnosis(run_id=run.id).message
        assert shown.HasField("previous_version") == (run is run2)


def test_a_version_is_compared_with_the_one_created_before_it_on_the_same_rows(versions, tmp_path):
    s, client = versions["s"], versions["client"]
    run1, run2 = versions["runs"]
    # v1 diagnosed again: v1 was created first, so there is nothing before it to compare with.
    assert run1.diagnose(progress=False).previous_version is None
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(len(s.class_names)), 300)

    def another(name: str, ids, **kwargs):
        run = client.create_run(name, class_names=s.class_names, embedding_dim=128, **kwargs)
        rows = np.isin(s.test.ids, ids)
        run.log_predictions(ids, s.test.embeddings[rows], labels=s.test.labels[rows], probabilities=probs,
                            metadata=s.test.metadata[rows], progress=False)
        return run, run.diagnose(progress=False)

    # Another model on the same rows, and the same model on other rows: nothing to compare with.
    assert another("other-model", s.test.ids[:300], model_name="other", model_version="v1")[1].previous_version is None
    foreign = [f"x{i}" for i in range(300)]
    other = client.create_run("other-rows", class_names=s.class_names, embedding_dim=128,
                              model_name="listings-mlp", model_version="v9")
    other.log_predictions(foreign, rng.normal(size=(300, 128)), labels=rng.integers(0, 5, 300),
                          probabilities=probs, progress=False)
    assert other.diagnose(progress=False).previous_version is None
    # A version on 300 of the test rows is compared with the newest run before it that has a
    # diagnosis on them (v2; "other-rows" shares none), on those rows.
    v3, d3 = another("v3", s.test.ids[:300], model_name="listings-mlp", model_version="v3")
    m = d3.previous_version.message
    assert (m.run_id_a, m.num_shared, m.num_only_a, m.num_only_b) == (run2.id, 300, 3700, 0)


def test_rows_logged_after_a_diagnosis_are_left_out_of_the_comparison(versions):
    """CompareRuns compares the rows both diagnoses saw: a run that grew since its diagnosis
    is compared on its diagnosed rows, and says how many rows only one side saw."""
    client = versions["client"]
    run1, _ = versions["runs"]
    s = versions["s"]
    late = client.create_run("late-rows", class_names=s.class_names, embedding_dim=128)
    late.log_predictions(s.test.ids[:1000], s.test.embeddings[:1000], labels=s.test.labels[:1000],
                         probabilities=np.full((1000, len(s.class_names)), 1 / len(s.class_names)),
                         metadata=s.test.metadata[:1000], progress=False)
    late.diagnose(progress=False)
    late.log_predictions(s.test.ids[1000:1500], s.test.embeddings[1000:1500], labels=s.test.labels[1000:1500],
                         probabilities=np.full((500, len(s.class_names)), 1 / len(s.class_names)),
                         metadata=s.test.metadata[1000:1500], progress=False)
    m = client.compare(late, run1).message
    assert (m.num_shared, m.num_only_a, m.num_only_b) == (1000, 0, 3000)
    m = client.compare(run1, late).message
    assert (m.num_shared, m.num_only_a, m.num_only_b) == (1000, 3000, 0)


def test_paired_test_and_interval_hold_their_levels_on_correlated_versions():
    """Two versions that fail mostly on the same rows (as retrained models do): over 2000 simulated
    test sets of 300 rows, the 95% interval for B - A covers the true difference about 95% of the
    time, McNemar's mid-p rejects equal rates about 5% of the time when they are equal, and it finds
    a 4-point rise far more often than the independent-samples z-test the comparison used before."""
    from scipy import stats
    from blindspots_server.core.version_comparison import mcnemar_mid_p

    rng = np.random.default_rng(7)
    n, draws = 300, 2000
    # Joint failure probabilities (both, A only, B only): A fails 20%, B 20% or 24%.
    cells = {"equal": (0.17, 0.03, 0.03), "worse": (0.17, 0.03, 0.07)}
    covered, rejected, z_rejected = {}, {}, {}
    for name, (both, only_a, only_b) in cells.items():
        truth = only_b - only_a
        hits = rejections = z_rejections = 0
        for _ in range(draws):
            u = rng.random(n)
            failed_a = u < both + only_a
            failed_b = (u < both) | ((u >= both + only_a) & (u < both + only_a + only_b))
            c = rate_change(failed_a, failed_b)
            hits += c.difference_ci.low <= truth <= c.difference_ci.high
            rejections += c.p_value <= 0.05
            pooled = (failed_a.sum() + failed_b.sum()) / (2 * n)
            se = np.sqrt(pooled * (1 - pooled) * 2 / n)
            z_rejections += 2 * stats.norm.sf(abs(c.difference) / se) <= 0.05
        covered[name], rejected[name], z_rejected[name] = hits / draws, rejections / draws, z_rejections / draws
    assert all(0.93 <= v <= 0.975 for v in covered.values()), covered
    assert 0.02 <= rejected["equal"] <= 0.065, rejected
    assert rejected["worse"] > 2 * z_rejected["worse"], (rejected, z_rejected)
    # The mid-p against scipy's exact binomial test: for unequal counts the exact two-sided p minus
    # the probability of the observed count (Fagerland et al.'s 2 x [P(X <= k) - P(X = k) / 2]);
    # equal counts are no evidence either way (1).
    for worse, better in ((3, 0), (9, 4), (20, 31), (4, 9)):
        m, low = worse + better, min(worse, better)
        expected = stats.binomtest(low, m, 0.5).pvalue - stats.binom.pmf(low, m, 0.5)
        assert mcnemar_mid_p(worse, better) == pytest.approx(expected, abs=1e-12), (worse, better)
    assert mcnemar_mid_p(0, 0) == 1.0 and mcnemar_mid_p(50, 50) == pytest.approx(1.0)


def test_a_damaged_earlier_version_is_passed_over_and_the_diagnosis_is_whole(tmp_path, caplog):
    """The per-row file of v1's diagnosis is damaged: diagnosing v2 still succeeds, without a
    comparison (v1 is passed over, saying why in the log); CompareRuns itself is DATA_LOSS."""
    import grpc
    from blindspots import BlindspotsError

    s = make_scenario(n_train=1000, n_test=1500, n_pool=100, seed=2)
    probabilities = train_model(s.train, seed=2, epochs=10).predict_proba(s.test.embeddings)
    server = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    try:
        runs = []
        for version in ("v1", "v2"):
            run = client.create_run(f"eval-{version}", class_names=s.class_names, embedding_dim=128,
                                    model_name="m", model_version=version)
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=probabilities,
                                metadata=s.test.metadata, progress=False)
            runs.append(run)
        first = runs[0].diagnose(progress=False)
        per_row = tmp_path / "data" / "diagnoses" / f"{first.id}.parquet"
        raw = bytearray(per_row.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        per_row.write_bytes(bytes(raw))
        second = runs[1].diagnose(progress=False)
        assert second.previous_version is None and len(second.regions) == len(first.regions)
        assert any("not compared with run" in r.getMessage() and runs[0].id in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records][-5:]
        with pytest.raises(BlindspotsError) as err:
            client.compare(runs[0], runs[1])
        assert err.value.code == grpc.StatusCode.DATA_LOSS and first.id in err.value.details, err.value
    finally:
        client.close()
        server.stop()


def test_the_regression_gate_rarely_fires_when_nothing_changed():
    """1000 simulated comparisons where B fails other rows than A at the same rates (3 regions, 12
    slices, 5 classes, most failures shared): the gate (overall p, or a region's, slice's or class's
    BH q-value, at 0.05 with the rate up) fires in about 5% of them, and each of its three families
    (overall, regions, slices with classes) in under 5%."""
    rng = np.random.default_rng(11)
    n, draws = 3000, 1000
    fired = {"overall": 0, "region": 0, "slice": 0, "any": 0}
    for _ in range(draws):
        region = rng.integers(-1, 3, n)
        masks = [(f"s{i}", rng.random(n) < rng.uniform(0.05, 0.3)) for i in range(12)]
        label = rng.integers(0, 5, n)
        rate = np.where(region >= 0, 0.4, 0.1)
        u = rng.random(n)
        shared = u < 0.8 * rate
        failed_a = shared | ((u >= 0.8 * rate) & (u < rate))
        failed_b = shared | ((u >= rate) & (u < 1.2 * rate))
        result = VersionComparer().fit(region, region, failed_a, failed_b, masks,
                                       [(f"c{c}", label == c) for c in range(5)])
        found = {"overall": result.overall.difference > 0 and result.overall.p_value <= 0.05,
                 "region": any(c.rows.difference > 0 and c.q_value <= 0.05 for c in result.regions),
                 "slice": any(c.rows.difference > 0 and c.q_value <= 0.05 for c in result.slices + result.classes)}
        found["any"] = any(found.values())
        for k, v in found.items():
            fired[k] += v
    share = {k: v / draws for k, v in fired.items()}
    assert all(share[k] < 0.05 for k in ("overall", "region", "slice")) and 0.02 <= share["any"] <= 0.08, share


def test_the_summary_lists_the_classes_that_got_significantly_worse_worst_first():
    """Comparison.summary names the classes the gate counts (rate up, q <= alpha), the largest rise
    first, and leaves out one that rose without significance and one that improved."""
    from blindspots.comparison import Comparison

    m = pb.RunComparison(run_id_a="a", run_id_b="b", model_version_a="v1", model_version_b="v2", num_shared=250,
                         alpha=0.05)
    for name, rise, q in (("cat", 0.2, 0.01), ("dog", 0.1, 0.2), ("owl", 0.3, 0.001), ("fox", -0.1, 0.01)):
        m.classes.add(name=name, q_value=q, rows=pb.RateChange(
            support=50, error_rate_a=0.1, error_rate_b=0.1 + rise, difference=rise, p_value=q,
            difference_ci=pb.Interval(low=rise - 0.05, high=rise + 0.05)))
    lines = Comparison(m).summary().splitlines()
    at = lines.index("classes significantly worse (B - A on the same rows):")
    assert lines[at + 1:] == ["  owl: 10% -> 40% of 50 (+30%, CI +25% to +35%, q=0.001)",
                              "  cat: 10% -> 30% of 50 (+20%, CI +15% to +25%, q=0.01)"]
