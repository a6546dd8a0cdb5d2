"""What an operator asks a running server, through a real server, the SDK and the CLI: its jobs (what
is queued or running now, newest first, narrowed by state, kind and run; one cancelled from the
command line), and what the server is and what a token may do (GetServerInfo)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blindspots import Client, InvalidArgumentError, NotFoundError

from blindspots_server.config import ServerConfig
from blindspots_server.server.app import BlindspotsServer
from blindspots_server.storage import open_store
from conftest import free_port, index_builds_done, metric_sample, metrics_text, start_server

BIN = Path(sys.executable).parent / "blindspots"


def _cli(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args, "--address", address], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BLINDSPOTS_ADDRESS": ""})


def _diagnosed_runs(client: Client, rng: np.random.Generator, names: tuple[str, ...]) -> tuple[list, list]:
    """A run of 300 random rows per name, each diagnosed in turn; the runs and their finished jobs."""
    runs, jobs = [], []
    for name in names:
        run = client.create_run(name, class_names=["a", "b"], embedding_dim=8)
        run.log_predictions([f"{name}{i}" for i in range(300)], rng.normal(size=(300, 8)),
                            labels=rng.integers(0, 2, 300), probabilities=rng.dirichlet([1, 1], 300), progress=False)
        jobs.append(client.wait_job(run.diagnose(wait=False).id, progress=False))
        runs.append(run)
    return runs, jobs


def test_jobs_are_listed_newest_first_and_a_running_one_is_cancelled_from_the_cli(tmp_path):
    rng = np.random.default_rng(3)
    server = start_server(tmp_path / "data")
    address = f"127.0.0.1:{server.port}"
    client = Client(address, retries=0, timeout=60)
    try:
        runs, jobs = _diagnosed_runs(client, rng, ("first", "second"))
        diagnoses = [job.id for job in jobs]
        pool = client.create_pool("unlabeled", embedding_dim=8)
        # Held here, the pool's index lock keeps its index build running until it is released.
        with server.servicer.indexes._lock(pool.id):
            pool.add([f"p{i}" for i in range(500)], rng.normal(size=(500, 8)), progress=False)
            deadline = time.monotonic() + 60
            while (running := client.list_jobs(["RUNNING"])).empty:
                assert time.monotonic() < deadline, "the index build did not start"
                time.sleep(0.05)
            (build,) = running["id"].tolist()
            listed = client.list_jobs()
            assert listed["id"].tolist() == [build, *reversed(diagnoses)]                 # newest first
            assert listed["kind"].tolist() == ["index_build", "diagnose", "diagnose"]
            assert listed["pool_id"].tolist() == [pool.id, "", ""]
            assert listed["run_id"].tolist() == ["", runs[1].id, runs[0].id]
            assert client.list_jobs(pool=pool)["id"].tolist() == [build]
            assert listed["state"].tolist() == ["RUNNING", "SUCCEEDED", "SUCCEEDED"]
            assert listed["result_id"].iloc[1] == client.get_diagnosis(run_id=runs[1].id).id
            # Each started after it was submitted; a finished one last changed when it ended, after that.
            assert (listed["started_at"] >= listed["created_at"]).all()
            assert (listed["updated_at"].iloc[1:] >= listed["started_at"].iloc[1:]).all()
            assert client.list_jobs(limit=2)["id"].tolist() == [build, diagnoses[1]]
            assert client.list_jobs(run=runs[0])["id"].tolist() == [diagnoses[0]]
            assert client.list_jobs(["SUCCEEDED"], kind="index_build").empty

            shown = _cli(address, "jobs", "list", "--state", "running", "--json")
            assert shown.returncode == 0, shown.stderr
            assert [(j["id"], j["kind"], j["state"]) for j in json.loads(shown.stdout)] == [
                (build, "index_build", "RUNNING")]
            table = _cli(address, "jobs", "list", "--limit", "2")
            assert table.returncode == 0 and build in table.stdout and diagnoses[1] in table.stdout
            assert diagnoses[0] not in table.stdout
            header, *lines = table.stdout.splitlines()
            assert header.split()[-2:] == ["waited", "ran"] and all(line.split()[-1].endswith("s") for line in lines)
            # Followed from another process while it runs: the watcher ends when the job does.
            watcher = subprocess.Popen([str(BIN), "jobs", "watch", build, "--quiet", "--address", address],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "BLINDSPOTS_ADDRESS": ""})
            cancelled = _cli(address, "jobs", "cancel", build)
            assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"{build}: ")
        deadline = time.monotonic() + 60
        while client.list_jobs(["CANCELLED"])["id"].tolist() != [build]:
            assert time.monotonic() < deadline, "the index build did not end cancelled"
            time.sleep(0.05)
        assert client.list_jobs(["PENDING", "RUNNING"]).empty
        out, err = watcher.communicate(timeout=120)
        assert watcher.returncode == 1 and f"job {build} ended CANCELLED" in err, out + err
        done = _cli(address, "jobs", "watch", diagnoses[0], "--quiet")
        assert done.returncode == 0 and done.stdout.strip() == f"{diagnoses[0]}: SUCCEEDED ({listed['result_id'].iloc[2]})"

        with pytest.raises(InvalidArgumentError, match="kind"):
            client.list_jobs(kind="train")
        from blindspots.v1 import blindspots_pb2 as pb
        for states in ([0], [99], [pb.Job.RUNNING, 7]):          # unset, or no state at all (a raw client)
            with pytest.raises(InvalidArgumentError, match="states"):
                client._unary(client.stub.ListJobs, pb.ListJobsRequest(states=states))
        with pytest.raises(NotFoundError, match="run_nope"):
            client.list_jobs(run="run_nope")
        with pytest.raises(ValueError, match="states"):
            client.list_jobs(["DONE"])
        assert _cli(address, "jobs", "list", "--state", "done").returncode == 2
        missing = _cli(address, "jobs", "cancel", "job_0000000000000000")
        assert missing.returncode == 1 and "not found" in missing.stderr
    finally:
        client.close()
        server.stop()


def test_server_info_says_what_the_server_is_and_what_the_token_may_do(tmp_path):
    """GetServerInfo (SDK server_info, CLI info): the version, store, compute and limits the server runs
    with, and each token's access; a read-only token may ask."""
    import json as json_module
    from importlib import metadata

    tokens = tmp_path / "tokens.json"
    writer, reader = "token-for-team-a-0123456789", "token-for-a-dashboard-0123"
    tokens.write_text(json_module.dumps({writer: ["alpha", "beta"],
                                         reader: {"projects": ["alpha"], "access": "read"}}))
    server = start_server(tmp_path / "data", auth_tokens_file=str(tokens), max_budget=5000, index_shards=1)
    address = f"127.0.0.1:{server.port}"
    try:
        with Client(address, token=writer, retries=0, timeout=30) as client:
            info = client.server_info()
        assert (info.version, info.store, info.compute, info.index_shards) == (
            metadata.version("blindspots-server"), "embedded", "in-process", 1)
        assert (info.max_budget, info.max_batch_rows, info.max_message_bytes, info.job_retention_days) == (
            5000, 200_000, 64 << 20, 30)
        assert "targeted" in info.strategies and "similar" in info.strategies
        assert (info.auth, info.all_projects, list(info.projects), info.read_only) == (True, False, ["alpha", "beta"],
                                                                                     False)
        shown = _cli(address, "info", "--json", "--token", reader)
        assert shown.returncode == 0, shown.stderr
        as_reader = json_module.loads(shown.stdout)
        assert (as_reader["projects"], as_reader["read_only"], as_reader["max_budget"]) == (["alpha"], True, 5000)
        table = _cli(address, "info", "--token", reader)
        assert table.returncode == 0 and "projects alpha, read-only" in table.stdout and "embedded" in table.stdout
        assert "finished jobs kept 30 days" in table.stdout
        import faiss
        device = "gpu" if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0 else "cpu"
        assert info.index_device == device and f"indexes on the {device.upper()}" in table.stdout
        assert _cli(address, "info").returncode == 1                     # no token: UNAUTHENTICATED
    finally:
        server.stop()
    open_server = start_server(tmp_path / "open", job_retention_days=0)
    try:
        with Client(f"127.0.0.1:{open_server.port}", retries=0, timeout=30) as client:
            info = client.server_info()
        assert (info.auth, info.all_projects, list(info.projects), info.read_only) == (False, True, [], False)
        assert info.job_retention_days == 0
        assert "finished jobs kept forever" in _cli(f"127.0.0.1:{open_server.port}", "info").stdout
    finally:
        open_server.stop()


def test_jobs_that_ended_past_job_retention_days_are_deleted_and_what_they_made_stays(tmp_path):
    """job_retention_days: a server deletes the records of the jobs that ended longer ago than that
    (at start, then hourly); a job that ended since stays, and the diagnosis a deleted job made is
    still read. 0 keeps every job; a negative value is refused before the store is opened."""
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    server = start_server(data, job_retention_days=0, metrics_port=free_port())
    client = Client(f"127.0.0.1:{server.port}", retries=0, timeout=60)
    try:
        runs, jobs = _diagnosed_runs(client, rng, ("old", "recent"))
        pool = client.create_pool("unlabeled", embedding_dim=8)
        pool.add([f"p{i}" for i in range(200)], rng.normal(size=(200, 8)), progress=False)
        index_builds_done(server, 1)
        (build,) = client.list_jobs(kind="index_build")["id"].tolist()
    finally:
        client.close()
        server.stop()
    # The catalog as it would be 40 days after the old diagnosis and the build ended, 10 after the recent one.
    store = open_store(str(data))
    now = time.time()
    for job_id, days in ((jobs[0].id, 40), (build, 40), (jobs[1].id, 10)):
        store.save_job(dataclasses.replace(store.get_job(job_id), updated_at=now - days * 86400))
    store.close()

    with pytest.raises(ValueError, match="job_retention_days"):
        BlindspotsServer(ServerConfig(data_dir=str(data), port=0, job_retention_days=-1))
    server = start_server(data, job_retention_days=0)
    client = Client(f"127.0.0.1:{server.port}", retries=0, timeout=60)
    try:
        time.sleep(0.5)
        assert set(client.list_jobs()["id"]) == {jobs[0].id, jobs[1].id, build}      # 0: kept
    finally:
        client.close()
        server.stop()

    server = start_server(data, metrics_port=free_port())          # the default: 30 days
    client = Client(f"127.0.0.1:{server.port}", retries=0, timeout=60)
    try:
        deadline = time.monotonic() + 30
        while len(client.list_jobs()) > 1:
            assert time.monotonic() < deadline, "the jobs past retention were not deleted"
            time.sleep(0.05)
        assert client.list_jobs()["id"].tolist() == [jobs[1].id]
        with pytest.raises(NotFoundError):
            client.get_job(jobs[0].id)
        assert client.get_diagnosis(run_id=runs[0].id).id == jobs[0].result_id     # what it made stays
        assert metric_sample(metrics_text(server), "blindspots_jobs_pruned_total") == 2
    finally:
        client.close()
        server.stop()


@contextlib.contextmanager
def _serving(data: Path, **config):
    """A real server on ``data`` (finished jobs kept) and a client of it, both closed after."""
    server = start_server(data, job_retention_days=0, **config)
    address = f"127.0.0.1:{server.port}"
    client = Client(address, retries=0, timeout=60)
    try:
        yield server, client, address
    finally:
        client.close()
        server.stop()


def _days_unused(frame, ids: dict[str, str], now: float) -> dict[str, float]:
    """Days from each listed run's or pool's ``last_used_at`` to ``now``, by name."""
    import datetime as dt
    used = frame.set_index("id")["last_used_at"]
    return {name: (now - used[i].replace(tzinfo=dt.timezone.utc).timestamp()) / 86400.0 for name, i in ids.items()}


def _swept_one(server: BlindspotsServer, client: Client, address: str, caplog, target: str, kept: str) -> None:
    """After a server with ``<target>_retention_days`` 30 swept once: one ``target`` went, as the
    counters say; the one holding labels was kept and named in the log; the info says the value; the
    next hourly sweep deletes nothing more."""
    assert metric_sample(metrics_text(server), f"blindspots_{target}s_pruned_total") == 1
    assert metric_sample(metrics_text(server), "blindspots_deleted_total", target=target) == 1
    assert getattr(client.server_info(), f"{target}_retention_days") == 30
    assert f"{target}s deleted once unused 30 days" in _cli(address, "info").stdout
    logged = [r.getMessage() for r in caplog.records if f"kept 1 {target}(s)" in r.getMessage()]
    assert logged and kept in logged[0] and "labels export" in logged[0]
    assert getattr(server, f"prune_{target}s")() == 0


def _until_swept(still_there, what: str, timeout_s: float = 30) -> None:
    """Wait for the retention sweep a server starts with to delete ``what``."""
    deadline = time.monotonic() + timeout_s
    while still_there():
        assert time.monotonic() < deadline, f"{what} was not deleted"
        time.sleep(0.05)


def test_runs_unused_past_run_retention_days_are_deleted_but_the_newest_of_a_model_and_labeled_ones_stay(
        tmp_path, caplog):
    """run_retention_days: a server deletes the runs nobody created, ingested into, diagnosed or suggested
    from for that long, with what they own (their suggestion sets, not the pool); it keeps one diagnosed since, one
    holding relabeled test rows (logged), and the newest run of each model however old. 0, the
    default, keeps every run; a negative value is refused before the store is opened."""
    import datetime as dt
    import sqlite3

    import pandas as pd

    rng = np.random.default_rng(8)
    data = tmp_path / "data"
    with _serving(data) as (server, client, address):
        pool = client.create_pool("unlabeled", embedding_dim=8)
        pool.add([f"p{i}" for i in range(200)], rng.normal(size=(200, 8)), progress=False)
        runs = {}
        for name, model in (("v1", "m"), ("v2", "m"), ("v3", "m"), ("v4", "m"), ("solo", "other")):
            run = client.create_run(name, class_names=["a", "b"], embedding_dim=8, model_name=model)
            run.log_predictions([f"{name}{i}" for i in range(300)], rng.normal(size=(300, 8)),
                                labels=rng.integers(0, 2, 300), probabilities=rng.dirichlet([1, 1], 300),
                                progress=False)
            runs[name] = run.id
        client.wait_job(client.get_run(runs["v1"]).diagnose(wait=False).id, progress=False)
        client.suggest(runs["v1"], pool.id, 10, strategy="random", progress=False)
        client.wait_job(client.get_run(runs["v2"]).diagnose(wait=False).id, progress=False)
        client.import_labels(pd.DataFrame({"sample_id": ["v30"], "label": ["b"]}), run_id=runs["v3"])
    # The catalog as it would be 40 days after every run was made and used, but v2 diagnosed 5 days ago
    # and v4 made today (the catalog written while no server holds it).
    now, day = time.time(), 86400.0
    with sqlite3.connect(data / "catalog.sqlite") as db:
        for name in ("v1", "v2", "v3", "solo"):
            db.execute("UPDATE runs SET created_at=?, ingested_at=? WHERE id=?", (now - 40 * day, now - 40 * day,
                                                                                    runs[name]))
        db.execute("UPDATE diagnoses SET created_at=? WHERE run_id<>?", (now - 40 * day, runs["v2"]))
        db.execute("UPDATE diagnoses SET created_at=? WHERE run_id=?", (now - 5 * day, runs["v2"]))
        db.execute("UPDATE suggestion_sets SET created_at=?", (now - 40 * day,))
    db.close()

    with pytest.raises(ValueError, match="run_retention_days"):
        BlindspotsServer(ServerConfig(data_dir=str(data), port=0, run_retention_days=-1))
    with _serving(data) as (server, client, address):            # run_retention_days 0, the default: all kept
        time.sleep(0.5)
        assert {r.id for r in client.list_runs()} == set(runs.values())
        assert client.server_info().run_retention_days == 0
        # When each run was last used, and what run_retention_days 30 would delete (the labeled run
        # is listed too: only deleting it is refused).
        ago = _days_unused(client.runs_frame(), runs, now)
        assert all(abs(ago[n] - 40) < 0.01 for n in ("v1", "v3", "solo")) and abs(ago["v2"] - 5) < 0.01
        assert ago["v4"] < 0.01
        preview = client.prune_runs(1, unused_for=30, dry_run=True)
        assert set(preview["id"]) == {runs["v1"], runs["v3"]} and set(preview["action"]) == {"would delete"}
        shown = _cli(address, "prune", "--keep", "1", "--unused-days", "30", "--dry-run")
        assert shown.returncode == 0 and "2 run(s) would be deleted" in shown.stdout, shown.stdout + shown.stderr
        assert client.prune_runs(1, unused_for=41, dry_run=True).empty

    with _serving(data, run_retention_days=30, metrics_port=free_port()) as (server, client, address):
        _until_swept(lambda: runs["v1"] in {r.id for r in client.list_runs()}, "the run past retention")
        assert {r.id for r in client.list_runs()} == {runs[n] for n in ("v2", "v3", "v4", "solo")}
        with pytest.raises(NotFoundError):
            client.get_run(runs["v1"])
        assert client.get_pool(pool.id).message.num_rows == 200                    # the pool stays, its set went
        assert client.list_suggestion_sets(pool=pool.id).empty
        assert client.list_jobs(run=runs["v2"])["state"].tolist() == ["SUCCEEDED"]
        _swept_one(server, client, address, caplog, "run", kept=runs["v3"])


def test_pools_unused_past_pool_retention_days_are_deleted_but_the_newest_of_a_project_and_labeled_ones_stay(
        tmp_path, caplog):
    """pool_retention_days: a server deletes the pools nobody created, ingested into or suggested from
    for that long, with their rows, index and suggestion sets (not the runs the sets were made for); it
    keeps one suggested from since, one holding labels from a labeling tool (logged), and the newest
    pool of each project however old. 0, the default, keeps every pool; the SDK and the CLI preview
    what a value would delete; a negative value is refused before the store is opened."""
    import datetime as dt
    import sqlite3

    import pandas as pd

    rng = np.random.default_rng(9)
    data = tmp_path / "data"
    with _serving(data, metrics_port=free_port()) as (server, client, address):
        run = client.create_run("eval", class_names=["a", "b"], embedding_dim=8)
        run.log_predictions([f"r{i}" for i in range(200)], rng.normal(size=(200, 8)),
                            labels=rng.integers(0, 2, 200), probabilities=rng.dirichlet([1, 1], 200), progress=False)
        pools = {}
        for name, project in (("old", ""), ("suggested", ""), ("labeled", ""), ("newest", ""), ("alone", "other")):
            pool = client.create_pool(name, embedding_dim=8, project=project)
            pool.add([f"{name}{i}" for i in range(100)], rng.normal(size=(100, 8)), progress=False)
            pools[name] = pool.id
        index_builds_done(server, len(pools))
        for name in ("old", "suggested"):
            client.suggest(run.id, pools[name], 5, strategy="random", progress=False)
        client.import_labels(pd.DataFrame({"sample_id": ["labeled0"], "label": ["b"]}), pool_id=pools["labeled"])
    with pytest.raises(ValueError, match="pool_retention_days"):
        BlindspotsServer(ServerConfig(data_dir=str(data), port=0, pool_retention_days=-1))
    # The catalog as it would be 40 days on (older pools made first), but the "suggested" pool
    # suggested from 5 days ago (written while no server holds it).
    now, day = time.time(), 86400.0
    with sqlite3.connect(data / "catalog.sqlite") as db:
        for age, name in enumerate(("newest", "labeled", "suggested", "old", "alone"), start=37):
            db.execute("UPDATE pools SET created_at=?, ingested_at=? WHERE id=?", (now - age * day, now - age * day,
                                                                                     pools[name]))
        db.execute("UPDATE suggestion_sets SET created_at=? WHERE pool_id=?", (now - 40 * day, pools["old"]))
        db.execute("UPDATE suggestion_sets SET created_at=? WHERE pool_id=?", (now - 5 * day, pools["suggested"]))
    db.close()

    with _serving(data) as (server, client, address):            # pool_retention_days 0, the default: all kept
        time.sleep(0.5)
        assert {p.id for p in client.list_pools()} == set(pools.values())
        assert client.server_info().pool_retention_days == 0
        frame = client.pools_frame()
        ago = _days_unused(frame, pools, now)
        assert [round(ago[n], 2) for n in ("newest", "labeled", "suggested", "old", "alone")] == [37, 38, 5, 40, 41]
        assert (client.get_pool(pools["suggested"]).message.last_used_at.ToDatetime()
                == frame.set_index("id")["last_used_at"][pools["suggested"]])
        preview = client.prune_pools(1, unused_for=30, dry_run=True)
        assert preview["id"].tolist() == [pools["old"], pools["labeled"]]
        assert set(preview["action"]) == {"would delete"} and (preview["bytes"] > 0).all()
        shown = _cli(address, "prune", "--pools", "--keep", "1", "--unused-days", "30", "--dry-run")
        assert shown.returncode == 0 and "2 pool(s) would be deleted" in shown.stdout, shown.stdout + shown.stderr
        refused = _cli(address, "prune", "--pools", "--keep", "1", "--model", "m")
        assert refused.returncode == 2 and "--model" in refused.stderr
        assert client.prune_pools(1, unused_for=41, dry_run=True).empty

    with _serving(data, pool_retention_days=30, metrics_port=free_port()) as (server, client, address):
        _until_swept(lambda: pools["old"] in {p.id for p in client.list_pools()}, "the pool past retention")
        assert {p.id for p in client.list_pools()} == {pools[n] for n in ("suggested", "labeled", "newest", "alone")}
        assert client.get_run(run.id).message.num_rows == 200                   # the run stays, the set went
        assert client.list_suggestion_sets(run=run.id)["pool_id"].tolist() == [pools["suggested"]]
        with pytest.raises(NotFoundError):
            client.get_pool(pools["old"])
        assert not any(pools["old"] in str(path) for path in data.rglob("*"))
        _swept_one(server, client, address, caplog, "pool", kept=pools["labeled"])


def test_the_metrics_show_the_jobs_queued_and_running_and_how_long_the_oldest_waits(tmp_path):
    """blindspots_jobs{state} and blindspots_jobs_oldest_pending_age_seconds, read from the catalog at
    scrape time: three index builds of a pool whose index is held fill both job workers and the third
    waits; once the index is let go they finish, and the gauges go back to 0. Each start is counted in
    blindspots_job_queue_seconds with the time it waited."""
    rng = np.random.default_rng(7)
    server = start_server(tmp_path / "data", metrics_port=free_port())
    client = Client(f"127.0.0.1:{server.port}", retries=0, timeout=60)

    def backlog() -> tuple[float, float, float]:
        text = metrics_text(server)
        return (metric_sample(text, "blindspots_jobs", state="PENDING"),
                metric_sample(text, "blindspots_jobs", state="RUNNING"),
                metric_sample(text, "blindspots_jobs_oldest_pending_age_seconds"))

    def wait_for(done, what: str) -> tuple[float, float, float]:
        deadline = time.monotonic() + 60
        while not done(seen := backlog()):
            assert time.monotonic() < deadline, f"{what}: the gauges stayed at {seen}"
            time.sleep(0.2)
        return seen

    try:
        assert backlog() == (0, 0, 0)
        pool = client.create_pool("unlabeled", embedding_dim=8)
        with server.servicer.indexes._lock(pool.id):
            for k in range(3):
                pool.add([f"p{k}-{i}" for i in range(100)], rng.normal(size=(100, 8)), progress=False)
            pending, running, waited = wait_for(lambda b: b[:2] == (1, 2), "two builds running, one waiting")
            assert 0 < waited < 120
            assert len(client.list_jobs(["PENDING"])) == 1 and len(client.list_jobs(["RUNNING"])) == 2
            assert client.list_jobs(["PENDING"])["started_at"].isna().all()         # not started yet
            assert client.list_jobs(["RUNNING"])["started_at"].notna().all()
            (pending,) = json.loads(_cli(f"127.0.0.1:{server.port}", "jobs", "list", "--state", "pending",
                                         "--json").stdout)
            assert pending["started_at"] is None and pending["created_at"].endswith("Z")
            shown = _cli(f"127.0.0.1:{server.port}", "jobs", "list", "--state", "pending").stdout.splitlines()
            assert shown[1].split()[-1].endswith("s")        # how long it has waited so far; no "ran" yet
        wait_for(lambda b: b == (0, 0, 0), "every build done")
        assert client.list_jobs(kind="index_build")["state"].tolist() == ["SUCCEEDED"] * 3
        text = metrics_text(server)
        assert metric_sample(text, "blindspots_job_queue_seconds_count", kind="index_build") == 3
        assert metric_sample(text, "blindspots_job_queue_seconds_sum", kind="index_build") > 0
        assert metric_sample(text, "blindspots_job_queue_seconds_count", kind="diagnose") == 0
    finally:
        client.close()
        server.stop()
