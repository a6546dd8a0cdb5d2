"""The `blindspots` console script against a real server."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).parent / "blindspots"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BLINDSPOTS_ADDRESS": ""})


def test_runs_diagnose_suggest(server, client, small_scenario, tmp_path):
    s = small_scenario.scenario
    address = f"127.0.0.1:{server.port}"
    run = client.create_run("cli-eval", class_names=s.class_names, embedding_dim=128)
    run.log_predictions(s.test.ids, s.test.embeddings, labels=s.test.labels, probabilities=small_scenario.test_probs,
                        metadata=s.test.metadata)
    pool = client.create_pool("cli-pool", embedding_dim=128)
    pool.add(s.pool.ids, s.pool.embeddings, metadata=s.pool.metadata)

    listed = _cli("runs", "--address", address)
    assert listed.returncode == 0 and run.id in listed.stdout and "cli-eval" in listed.stdout

    diag = _cli("diagnose", run.id, "--address", address)
    assert diag.returncode == 0, diag.stderr
    assert "failures in 3000 rows" in diag.stdout and "region" in diag.stdout

    out = tmp_path / "picks.csv"
    sugg = _cli("suggest", run.id, "--pool", pool.id, "--budget", "25", "-o", str(out), "--address", address,
                "--filter", "camera=cam_e")
    assert sugg.returncode == 0, sugg.stderr
    assert "failures have an eligible pool row within the pool's own spacing" in sugg.stdout, sugg.stdout
    frame = pd.read_csv(out)
    assert len(frame) == 25 and frame["rank"].tolist() == list(range(1, 26))
    cams = s.pool.metadata.set_index(pd.Index(s.pool.ids))["camera"]
    assert set(cams[frame["sample_id"]]) == {"cam_e"}

    missing = _cli("diagnose", "run_missing", "--address", address)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and "run_missing" in missing.stderr
