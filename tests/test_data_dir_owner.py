"""One process owns an embedded data directory: a second server, or `store recover`, on a directory
a server has open is refused and changes nothing; the owner's work goes on; a stopped or killed
owner leaves no lock behind."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from blindspots import Client
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.storage import EmbeddedStore, StoreUnusable
from blindspots_server.storage.owner import LOCK_FILE

from conftest import free_port, start_server
from test_api import _log_scenario
from test_durability import ServerProcess


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blindspots.cli", *args], capture_output=True, text=True, timeout=120)


def test_a_second_server_on_a_data_directory_in_use_is_refused_and_changes_nothing(tmp_path, small_scenario):
    data = tmp_path / "data"
    owner = start_server(data)
    try:
        with Client(f"127.0.0.1:{owner.port}", timeout=120) as client:
            run, pool, _ = _log_scenario(client, small_scenario)
            job = run.diagnose(wait=False)                        # started before the others try
            holder = f"pid {os.getpid()} on {socket.gethostname()}"
            second = _cli("serve", "--data-dir", str(data), "--port", str(free_port()))
            assert second.returncode == 2, second.stderr
            assert f"the data directory {data} is in use by another process ({holder}" in second.stderr
            recover = _cli("store", "recover", "--data-dir", str(data))
            assert recover.returncode == 2 and "is in use by another process" in recover.stderr, recover.stderr
            # Nothing was tidied under the owner: no quarantine, its job ran on, the catalog is its own.
            assert client.wait_job(job.id, False).state == pb.Job.SUCCEEDED
            assert not (data / "quarantine").exists() and not list(data.glob("catalog.replaced-*"))
            diagnosis = client.get_diagnosis(run_id=run.id)
            picks = run.suggest(pool, budget=20, progress=False)
            assert len(picks) == 20
            assert _cli("store", "check", "--data-dir", str(data)).returncode == 0   # reads beside it
    finally:
        owner.stop()
    # Stopped, it lets the next one in; that one sees everything.
    again = start_server(data)
    try:
        with Client(f"127.0.0.1:{again.port}", timeout=60) as client:
            assert client.get_diagnosis(run_id=run.id).id == diagnosis.id
    finally:
        again.stop()


def test_a_killed_owner_leaves_no_lock(tmp_path):
    data = tmp_path / "data"
    proc = ServerProcess(data, free_port(), tmp_path / "server.log")
    proc.start()
    try:
        with pytest.raises(StoreUnusable, match=f"in use by another process \\(pid {proc.proc.pid} "):
            EmbeddedStore(data)
    finally:
        proc.kill()                                               # SIGKILL: no close, no clean-up
    store = EmbeddedStore(data)
    try:
        assert (data / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")
    finally:
        store.close()
    assert _cli("store", "recover", "--data-dir", str(data)).returncode == 0


def test_the_lock_is_given_up_when_opening_fails(tmp_path):
    data = tmp_path / "data"
    EmbeddedStore(data).close()
    (data / "catalog.sqlite").write_bytes(b"not a catalog" * 100)
    with pytest.raises(StoreUnusable, match="catalog"):
        EmbeddedStore(data)
    recover = _cli("store", "recover", "--data-dir", str(data))    # another process: not "in use"
    assert recover.returncode == 0, recover.stderr
