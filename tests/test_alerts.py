"""deploy/prometheus/alerts.yml: promtool checks and unit-tests the rules, then a real Prometheus
with deploy/'s configuration raises the model-regression alert from a real server's metrics when
a new version of a model gets worse on a slice, drops it when the next version fixes it, and
raises BlindspotsDown when the server stops."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blindspots import Client
from blindspots_scenarios.listings import make_scenario, train_model
from conftest import free_port, metrics_text, start_server
from test_observability import ALERT_RULES, ROOT, PrometheusProcess

PROMTOOL = shutil.which("promtool")
BIN = Path(sys.executable).parent / "blindspots"
MODEL = "listings-mlp"

pytestmark = pytest.mark.skipif(
    PROMTOOL is None or shutil.which("prometheus") is None,
    reason="prometheus and promtool are not installed (`make test-tools` installs Debian's prometheus)")


def test_rules_are_valid_and_pass_their_unit_tests():
    checked = subprocess.run([PROMTOOL, "check", "rules", str(ALERT_RULES)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=ROOT / "tests" / "prometheus",
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_real_prometheus_alerts_on_a_regressed_version_and_on_a_stopped_server(tmp_path):
    s = make_scenario(n_train=2000, n_test=2000, n_pool=200, seed=3)
    probabilities = train_model(s.train, seed=3, epochs=20).predict_proba(s.test.embeddings)
    # v2 breaks on one camera: its rows' probabilities shift by one class, so nearly all fail.
    broken = probabilities.copy()
    on_cam_d = s.test.metadata["camera"].eq("cam_d").to_numpy()
    broken[on_cam_d] = np.roll(probabilities[on_cam_d], 1, axis=1)
    server = start_server(tmp_path / "data", metrics_port=free_port(), metrics_top_k=5)
    prom = PrometheusProcess(f"127.0.0.1:{server.metrics_port}", tmp_path)
    client = Client(f"127.0.0.1:{server.port}", timeout=120)
    try:
        prom.wait(lambda: prom.query('up{job="blindspots"} == 1'), what="the first scrape")

        def version(name: str, probs: np.ndarray):
            run = client.create_run(f"eval-{name}", class_names=s.class_names, embedding_dim=128,
                                    model_name=MODEL, model_version=name, project="listings")
            run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=probs,
                                metadata=s.test.metadata, progress=False)
            return run, run.diagnose(progress=False)

        v1, d1 = version("v1", probabilities)
        assert d1.previous_version is None
        v2, d2 = version("v2", broken)
        against_v1 = d2.previous_version
        assert against_v1.message.run_id_a == v1.id and against_v1.message.num_shared == 2000
        worse = against_v1.regressions()
        assert "camera=cam_d" in set(worse.loc[worse.scope == "slice", "name"]), worse
        assert "overall" in set(worse.scope) and "against the previous version v1" in d2.summary()

        def regression_alerts():
            return prom.alerts("BlindspotsModelRegression")

        alerts = prom.wait(regression_alerts, what="BlindspotsModelRegression")
        assert len(alerts) == 1 and alerts[0]["state"] == "firing"
        labels = alerts[0]["labels"]
        assert (labels["model_version"], labels["baseline_version"]) == ("v2", "v1")
        assert (labels["run_id"], labels["project"]) == (v2.id, "listings") and "baseline_run_id" not in labels
        assert float(alerts[0]["value"]) == len(worse)
        assert f"{MODEL} v2 is worse than v1 in {len(worse)} places" == alerts[0]["annotations"]["summary"]
        gate = subprocess.run([str(BIN), "diagnose", v2.id, "--latest", "--fail-on-regression", "--address",
                               f"127.0.0.1:{server.port}"], capture_output=True, text=True, timeout=120)
        assert gate.returncode == 3 and "[slice] camera=cam_d: " in gate.stdout, gate.stdout + gate.stderr
        exported = metrics_text(server)
        assert 'scope="slice"' in exported and 'name="camera=cam_d"' in exported

        # v3 goes back to v1's predictions: nothing got worse than v2, and v2 is no longer the newest.
        v3, d3 = version("v3", probabilities)
        assert d3.previous_version.message.run_id_a == v2.id and d3.previous_version.regressions().empty
        prom.wait(lambda: not regression_alerts(), what="the regression alert to end")
        # Waited for too: a scrape in the middle of v3's export can end the alert before its series is in.
        prom.wait(lambda: prom.query(f'blindspots_version_regressions{{model_version="v3"}} == 0'),
                  what="v3's regression count of 0")

        server.stop()
        down = prom.wait(lambda: prom.alerts("BlindspotsDown"), what="BlindspotsDown")
        assert down[0]["state"] == "pending"        # `for: 5m` before it fires
    finally:
        client.close()
        prom.stop()
        server.stop()
