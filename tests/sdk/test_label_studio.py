"""The labeling round trip against a real Label Studio, run in its own venv on loopback.

label-studio (1.23.2) is heavy (Django, ~150 packages, minutes of database
migrations on first start), so it lives outside the repository and this test
finds it, in order, at:

- ``BLINDSPOTS_LABEL_STUDIO_VENV``: a venv with ``bin/label-studio``;
- ``$BLINDSPOTS_CACHE_DIR/label-studio-1.23.2/venv`` (default cache dir:
  ``$XDG_CACHE_HOME/blindspots`` or ``~/.cache/blindspots``), installed there by this
  test when ``BLINDSPOTS_LABEL_STUDIO=install`` is set (``make test-labelstudio``
  sets it), within ``BLINDSPOTS_LABEL_STUDIO_INSTALL_TIMEOUT`` seconds (900).

Otherwise it skips and says how to enable it. A migrated template database is kept
beside the venv and copied for each run, so later runs start in seconds.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from blindspots import Client
from blindspots.labeling import read_label_studio_export
from blindspots_scenarios.listings import make_scenario, train_model
from conftest import free_port, start_server

pytestmark = pytest.mark.labelstudio

VERSION = "1.23.2"
TOKEN = "blindspots0test0token0000000000a"
USER, PASSWORD = "annotator@example.com", "blindspots-test-pw"
BIN = Path(sys.executable).parent / "blindspots"


def _cache() -> Path:
    base = os.environ.get("BLINDSPOTS_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "blindspots"
    return Path(base) / f"label-studio-{VERSION}"


def _venv() -> Path:
    if os.environ.get("BLINDSPOTS_LABEL_STUDIO_VENV"):
        venv = Path(os.environ["BLINDSPOTS_LABEL_STUDIO_VENV"])
        if not (venv / "bin" / "label-studio").exists():
            pytest.skip(f"BLINDSPOTS_LABEL_STUDIO_VENV={venv} has no bin/label-studio")
        return venv
    venv = _cache() / "venv"
    if (venv / "bin" / "label-studio").exists():
        return venv
    if os.environ.get("BLINDSPOTS_LABEL_STUDIO") != "install":
        pytest.skip(f"label-studio is not installed at {venv}: set BLINDSPOTS_LABEL_STUDIO=install (or run "
                    "`make test-labelstudio`) to install it there, or BLINDSPOTS_LABEL_STUDIO_VENV to use one")
    timeout = float(os.environ.get("BLINDSPOTS_LABEL_STUDIO_INSTALL_TIMEOUT", 900))
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"label-studio=={VERSION}"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"installing label-studio=={VERSION} took over {timeout:.0f} s")
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"label-studio=={VERSION} did not install: {done.stderr.strip()[-300:]}")
    return venv


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except OSError:
        return 0, b""


class LabelStudio:
    """A label-studio server process on loopback with one user and a legacy API token."""

    def __init__(self, venv: Path, data_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LATEST_VERSION_CHECK": "false",
               # 1.23 disables legacy tokens for new organisations; a test user wants the simple one.
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "COLLECT_ANALYTICS": "false"}
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(self.port), "--username", USER, "--password", PASSWORD, "--user-token", TOKEN],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _get(self.url + "/health")[0] == 200:
                return True
            time.sleep(2)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._log.close()

    def api(self, method: str, path: str, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    venv = _venv()
    template = _cache() / "template-data"
    root = tmp_path_factory.mktemp("label-studio")
    if not (template / "label_studio.sqlite3").exists():
        # First start: migrations take minutes on a small machine; keep the result.
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        first = LabelStudio(venv, template, root / "init.log")
        ready = first.wait(float(os.environ.get("BLINDSPOTS_LABEL_STUDIO_START_TIMEOUT", 900)))
        first.stop()
        if not ready:
            shutil.rmtree(template, ignore_errors=True)
            pytest.skip(f"label-studio did not start; its log: {(root / 'init.log').read_text()[-500:]}")
    data = root / "data"
    shutil.copytree(template, data)
    ls = LabelStudio(venv, data, root / "server.log")
    if not ls.wait(300):
        ls.stop()
        pytest.fail(f"label-studio did not start from the template; log: {(root / 'server.log').read_text()[-800:]}")
    yield ls
    ls.stop()


def test_round_trip_through_label_studio(label_studio, tmp_path):
    s = make_scenario(n_train=1500, n_test=1500, n_pool=2000, seed=2)
    model = train_model(s.train, seed=2, epochs=10)
    server = start_server(tmp_path / "bs-data")
    address = f"127.0.0.1:{server.port}"
    client = Client(address, retries=2, timeout=120)
    try:
        run = client.create_run("ls-eval", class_names=s.class_names, embedding_dim=128, model_version="v7")
        run.log_predictions(s.test.ids, s.test.labels, model.predict_proba(s.test.embeddings), s.test.embeddings,
                            metadata=s.test.metadata, uris=s.test.uris, progress=False)
        pool = client.create_pool("ls-pool", embedding_dim=128, num_classes=len(s.class_names))
        pool.add(s.pool.ids, s.pool.embeddings, probabilities=model.predict_proba(s.pool.embeddings),
                 metadata=s.pool.metadata, uris=s.pool.uris, progress=False)
        run.diagnose(progress=False)
        tasks_path = tmp_path / "tasks.json"
        done = subprocess.run([str(BIN), "suggest", run.id, "--pool", pool.id, "--budget", "25", "-o",
                               str(tasks_path), "--format", "label-studio", "--address", address],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

        # Label Studio takes the labeling config and the tasks as they are.
        config = (tmp_path / "tasks.label_config.xml").read_text()
        project = label_studio.api("POST", "/api/projects/", {"title": "blindspots picks", "label_config": config})
        imported = label_studio.api("POST", f"/api/projects/{project['id']}/import", json.loads(tasks_path.read_text()))
        assert imported["task_count"] == 25 and imported["prediction_count"] == 25
        tasks = label_studio.api("GET", f"/api/tasks/?project={project['id']}&page_size=100&fields=all")
        tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
        assert len(tasks) == 25

        # An annotator labels 24 of them (the truth), skips one.
        truth = {sid: s.class_names[t] for sid, t in zip(s.pool.ids, s.pool.true_labels)}
        skipped = tasks[0]["data"]["sample_id"]
        for task in tasks:
            sid = task["data"]["sample_id"]
            result = [{"from_name": "label", "to_name": "image", "type": "choices",
                       "value": {"choices": [truth[sid]]}}]
            label_studio.api("POST", f"/api/tasks/{task['id']}/annotations/",
                             {"result": result if sid != skipped else [], "was_cancelled": sid == skipped})

        for fmt in ("JSON", "JSON_MIN"):
            export = label_studio.api("GET", f"/api/projects/{project['id']}/export?exportType={fmt}")
            path = tmp_path / f"export-{fmt}.json"
            path.write_text(json.dumps(export))
            labels = read_label_studio_export(path)
            assert len(labels) == 24, fmt
            assert all(truth[sid] == lab for sid, lab in zip(labels["sample_id"], labels["label"])), fmt
            assert skipped not in set(labels["sample_id"])

        out = subprocess.run([str(BIN), "labels", "import", str(tmp_path / "export-JSON.json"), "--pool", pool.id,
                              "-o", str(tmp_path / "labels.parquet"), "--address", address],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "24 labels stored" in out.stdout
        stored = pool.labels(class_names=s.class_names)
        assert len(stored) == 24 and (stored["label_index"] >= 0).all()
        again = run.suggest(pool, budget=200, allow_repeats=True, progress=False)
        assert not set(again["sample_id"]) & set(stored["sample_id"])
        assert skipped in set(again["sample_id"]) or len(again) == 200
    finally:
        client.close()
        server.stop()
