"""The `blindspots` console script against a real server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from google.protobuf import json_format

from blindspots.v1 import blindspots_pb2 as pb

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

    # --json: the API's messages in protobuf's JSON mapping, read back into the same messages.
    listed = _cli("runs", "--json", "--address", address)
    assert listed.returncode == 0, listed.stderr
    runs = [json_format.ParseDict(r, pb.Run()) for r in json.loads(listed.stdout)]
    assert run.id in {r.id for r in runs} and client.get_run(run.id).message in runs
    pools = [json_format.ParseDict(p, pb.Pool()) for p in json.loads(_cli("pools", "--json", "--address",
                                                                           address).stdout)]
    assert [p.id for p in pools if p.id == pool.id] == [pool.id]
    latest = _cli("diagnose", run.id, "--latest", "--json", "--address", address)
    assert latest.returncode == 0, latest.stderr
    shown = json_format.ParseDict(json.loads(latest.stdout), pb.Diagnosis())
    assert shown == client.get_diagnosis(run_id=run.id).message and len(shown.regions) > 0
    assert '"num_samples": "3000"' in latest.stdout      # int64 as a string, as the mapping says

    missing = _cli("diagnose", "run_missing", "--address", address)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and "run_missing" in missing.stderr


def test_a_closed_stdout_ends_the_command_quietly(server, client):
    """`blindspots runs | head -1`: the reader closes the pipe; the command stops with 141, as a
    shell reports SIGPIPE, and no traceback."""
    for i in range(3):
        client.create_run(f"piped-{i}", class_names=["a", "b"], embedding_dim=2)
    read_end, write_end = os.pipe()
    os.close(read_end)                         # closed before anything is written: every write fails
    try:
        done = subprocess.run([str(BIN), "runs", "--address", f"127.0.0.1:{server.port}"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr
