"""The store never deletes what it cannot account for; damage is detected, reported and recoverable.

Real data directories, real servers on loopback, the real CLI entry point.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from blindspots import Client, NotFoundError
from blindspots.cli import main as cli
from blindspots_server.config import ServerConfig
from blindspots_server.server.app import BlindspotsServer
from blindspots_server.storage import DataLoss, EmbeddedStore, JobRecord, StoreUnusable
from blindspots_server.storage.maintenance import check_store
from blindspots_server.storage.transfer import copy_between

from conftest import start_server
from test_api import _log_scenario

DIM = 8


def _fill(client: Client, n_run: int = 400, n_pool: int = 300, seed: int = 0):
    """A run with predictions, a pool, a diagnosis and one suggestion round."""
    rng = np.random.default_rng(seed)
    run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM, model_name="m", model_version="v1",
                            request_id="fill-run")
    labels = rng.integers(0, 2, n_run)
    p = rng.uniform(0.05, 0.95, n_run)
    run.log_predictions([f"t{i}" for i in range(n_run)], rng.normal(size=(n_run, DIM)), labels=labels,
                        probabilities=np.stack([p, 1 - p], 1), progress=False, batch_size=100)
    pool = client.create_pool("p", embedding_dim=DIM, num_classes=2)
    q = rng.uniform(0.05, 0.95, n_pool)
    pool.add([f"u{i}" for i in range(n_pool)], rng.normal(size=(n_pool, DIM)),
             probabilities=np.stack([q, 1 - q], 1), progress=False)
    diagnosis = run.diagnose(progress=False)
    picks = run.suggest(pool, budget=20, strategy="random", request_id="fill-round")
    return run, pool, diagnosis, picks


def _files(data_dir: Path) -> set[str]:
    return {str(p.relative_to(data_dir)) for p in data_dir.rglob("*.parquet")}


@pytest.fixture
def filled(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
        run, pool, diagnosis, picks = _fill(client)
    srv.stop()
    return data, run.id, pool.id, diagnosis, picks


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_data_dir_without_its_catalog_refuses_to_start_and_deletes_nothing(filled, damage, capsys):
    data, *_ = filled
    before = _files(data)
    catalog = data / "catalog.sqlite"
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (data / extra).unlink(missing_ok=True)
    if damage == "missing":
        catalog.unlink()
    else:
        catalog.write_bytes(b"")
    with pytest.raises(StoreUnusable, match=f"catalog.sqlite is {damage}.*blindspots store recover"):
        BlindspotsServer(ServerConfig(data_dir=str(data), port=0))
    assert cli(["serve", "--data-dir", str(data), "--port", "0"]) == 2
    assert "refusing to open the data directory" in capsys.readouterr().err
    assert _files(data) == before and len(before) >= 6


def test_recover_rebuilds_the_catalog_from_the_files(filled):
    data, run_id, pool_id, diagnosis, picks = filled
    (data / "catalog.sqlite").unlink()
    assert cli(["store", "check", "--data-dir", str(data)]) == 1
    assert cli(["store", "recover", "--data-dir", str(data)]) == 0
    assert cli(["store", "check", "--data-dir", str(data)]) == 0
    srv = start_server(data)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            run = client.get_run(run_id)
            assert run.message.num_rows == 400 and run.message.model_version == "v1"
            assert list(run.message.class_names) == ["a", "b"]
            assert client.get_pool(pool_id).message.num_rows == 300
            again = client.get_diagnosis(run_id=run_id)
            assert again.id == diagnosis.id and len(again.regions) == len(diagnosis.regions)
            # Suggestion history came back too: the earlier picks stay excluded.
            more = run.suggest(client.get_pool(pool_id), budget=50, strategy="random")
            assert not set(more["sample_id"]) & set(picks["sample_id"])
            # So did the request ids: the run's and the round's requests, repeated, get them.
            assert client.create_run("r", class_names=["a", "b"], embedding_dim=DIM, model_name="m",
                                     model_version="v1", request_id="fill-run").id == run_id
            again = run.suggest(pool_id, budget=20, strategy="random", request_id="fill-round")
            assert again["sample_id"].tolist() == picks["sample_id"].tolist()
            assert again.attrs["suggestion_set"] == picks.attrs["suggestion_set"]
    finally:
        srv.stop()


def test_orphan_files_are_quarantined_not_deleted(filled):
    data, run_id, *_ = filled
    stray = data / "runs" / run_id / "part-00000099-deadbeef.parquet"
    stray.write_bytes((data / "runs" / run_id).glob("part-*.parquet").__next__().read_bytes())
    store = EmbeddedStore(data)
    try:
        assert not stray.exists()
        assert len(store.quarantined) == 1 and store.quarantined[0].startswith("quarantine/")
        assert (data / store.quarantined[0]).exists()
        assert store.get_run(run_id).num_rows == 400
    finally:
        store.close()
    report = check_store(data)
    assert report.ok and any("quarantine/" in n for n in report.notes)


def _flip_middle_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bytes_in_a_row_file_are_data_loss_never_data(filled):
    data, run_id, pool_id, *_ = filled
    victim = sorted((data / "pools" / pool_id).glob("part-*.parquet"))[0]
    _flip_middle_byte(victim)
    store = EmbeddedStore(data)
    try:
        with pytest.raises(DataLoss, match=f"pool '{pool_id}'"):
            store.read_rows("pool", pool_id)
    finally:
        store.close()
    assert cli(["store", "check", "--data-dir", str(data)]) == 1
    srv = start_server(data)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            # kcenter reads every column of the pool's rows (random and margin read no vectors, so
            # damage there is not theirs to find: `store check` finds it, as above).
            with pytest.raises(Exception) as info:
                client.get_run(run_id).suggest(client.get_pool(pool_id), budget=10, strategy="kcenter")
            assert info.value.code == grpc.StatusCode.DATA_LOSS
            assert pool_id in str(info.value) and str(data) not in str(info.value)
            assert client.get_run(run_id).message.num_rows == 400        # the server stays up
    finally:
        srv.stop()


def test_a_damaged_catalog_page_is_caught_at_start(filled):
    data, *_ = filled
    catalog = data / "catalog.sqlite"
    db = sqlite3.connect(catalog)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name='sample_ids'").fetchone()[0]
    db.close()
    raw = bytearray(catalog.read_bytes())
    start = (root - 1) * page
    raw[start + 8:start + page] = bytes(np.random.default_rng(0).integers(0, 256, page - 8, dtype=np.uint8))
    catalog.write_bytes(bytes(raw))
    before = _files(data)
    with pytest.raises(StoreUnusable, match="catalog cannot be read"):
        EmbeddedStore(data)
    assert _files(data) == before
    assert not check_store(data).ok


def test_online_backup_restores_to_a_working_server(tmp_path):
    data, backup = tmp_path / "data", tmp_path / "backup"
    srv = start_server(data)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            run, pool, diagnosis, _ = _fill(client)
            assert cli(["store", "backup", str(backup), "--data-dir", str(data)]) == 0    # server running
            rng = np.random.default_rng(5)
            run.log_predictions(["late0", "late1"], rng.normal(size=(2, DIM)), labels=[0, 1],
                                probabilities=np.full((2, 2), 0.5),
                                progress=False)
    finally:
        srv.stop()
    assert check_store(backup).ok
    restored = start_server(backup)
    try:
        with Client(f"127.0.0.1:{restored.port}", timeout=60) as client:
            assert client.get_run(run.id).message.num_rows == 400          # as of the backup
            assert client.get_diagnosis(run_id=run.id).id == diagnosis.id
            assert client.get_pool(pool.id).message.num_rows == 300
    finally:
        restored.stop()


def test_store_check_verifies_a_postgresql_store_and_its_file_root(tmp_path, postgres_uri, capsys):
    """`blindspots store check --store postgresql://... --files DIR`: every file the catalog names
    (row files, diagnoses, suggestion sets, the pool index) against the hash recorded at write."""
    files = tmp_path / "files"
    srv = start_server(tmp_path / "unused", store=postgres_uri, files=str(files))
    client = Client(f"127.0.0.1:{srv.port}", retries=0, timeout=120)
    try:
        run, pool, diagnosis, _ = _fill(client)
        run.suggest(pool, budget=20, progress=False)          # targeted: builds and stores the pool index
    finally:
        client.close()
        srv.stop()
    check = ["store", "check", "--store", postgres_uri, "--files", str(files)]
    assert cli(check) == 0
    out = capsys.readouterr().out
    stored = sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()
                    and not p.relative_to(files).as_posix().startswith("tmp/"))
    assert f"{len(stored)} file(s) checked: ok" in out and any(p.endswith(".faiss") for p in stored), (out, stored)
    # Damage: flipped bytes in a row file, a diagnosis file gone; a stray file is only a note.
    part = next(p for p in sorted(files.rglob("part-*.parquet")))
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    part.write_bytes(bytes(raw))
    (files / "diagnoses" / f"{diagnosis.id}.parquet").unlink()
    (files / "runs" / "stray.parquet").write_bytes(b"not ours")
    assert cli(check) == 1
    out = capsys.readouterr().out
    assert f"DAMAGE  {part.relative_to(files).as_posix()}: SHA-256 differs" in out
    assert f"DAMAGE  diagnoses/{diagnosis.id}.parquet: missing" in out
    assert "note    1 file(s) under the file root that no catalog row names" in out and "2 problem(s)" in out
    assert cli(["store", "recover", "--store", postgres_uri, "--files", str(files)]) == 2
    assert "store backup" in capsys.readouterr().err


def test_the_postgresql_check_reads_an_object_store_file_root(postgres_uri):
    """The same check over an fsspec ``memory://`` root (the path s3:// and gs:// take)."""
    import time
    import uuid

    from blindspots_server.storage import RunRecord, open_store
    from blindspots_server.storage.rows import build_table

    store = open_store(postgres_uri, files=f"memory://bs-{uuid.uuid4().hex[:8]}")
    try:
        store.create_run(RunRecord(id="run_a", name="a", project="p", model_name="m", model_version="1",
                                   dataset_name="d", class_names=["x", "y"], embedding_dim=2, created_at=time.time()))
        table = build_table(["a", "b"], np.zeros((2, 2), np.float32), np.zeros(2), np.full((2, 2), 0.5, np.float32),
                            None, {})
        store.ingest_batch("run", "run_a", "b1", table, {})
        report = store.check()
        assert report.ok and report.files_checked == 1 and not report.notes
        rel = store.row_files("run", "run_a")[0].location.split("/runs/", 1)[1]
        store.files.delete(f"runs/{rel}")
        report = store.check()
        assert not report.ok and report.problems == [f"runs/{rel}: missing or unreadable (FileNotFoundError)"]
    finally:
        store.close()


# ------------------------------------------------------------------ store copy / PostgreSQL backup
def _read_back(client: Client, run_id: str, pool_id: str) -> dict:
    """What a user reads of a filled store through the API (ids, counts, regions, members, labels)."""
    run, pool = client.get_run(run_id).message, client.get_pool(pool_id).message
    diagnosis = client.get_diagnosis(run_id=run_id)
    members = {r.id: sorted(client.region_members(diagnosis.id, r.id)["sample_id"]) for r in diagnosis.regions}
    labels = client.labels_frame(pool_id=pool_id)[["sample_id", "label", "source"]]
    return {"runs": sorted(r.id for r in client.list_runs()), "rows": (run.num_rows, pool.num_rows),
            "diagnosis": (diagnosis.id, len(diagnosis.regions)), "members": members,
            "index": (pool.index.kind, pool.index.num_indexed),
            "labels": sorted(map(tuple, labels.astype(str).values.tolist())),
            "job": client.get_job(diagnosis.message.job_id).state}


def _fill_with_labels_and_index(client: Client, sm):
    """The listings scenario (metadata, uris, failure regions), a diagnosis, two suggestion rounds
    (targeted builds and stores the pool index) and labels from a labeling tool."""
    run, pool, _ = _log_scenario(client, sm)
    run.diagnose(progress=False)
    picks = run.suggest(pool, budget=30, progress=False)
    run.suggest(pool, budget=20, strategy="random", progress=False)
    pool.import_labels(pd.DataFrame({"sample_id": picks["sample_id"][:5], "label": sm.scenario.class_names[:1] * 5}),
                       source="tool")
    return run, pool


def _repeat_exclusions(client: Client, run_id: str, pool_id: str) -> int:
    """How many pool rows a new suggestion excludes as picked before (the copied ``suggested`` rows)."""
    frame = client.suggest(run_id, pool_id, budget=5, strategy="random", progress=False)
    return int(frame.attrs["exclusions"]["earlier_picks"])


def test_store_copy_moves_an_embedded_store_to_postgresql_and_back(tmp_path, postgres_uri, small_scenario, capsys):
    """`store copy` into PostgreSQL, then (after more writes there) `store backup` of that PostgreSQL
    store into a data directory: each answers like its source through a real server (runs, rows,
    the diagnosis and its regions' members, the pool index, labels, earlier picks), and `store
    check` passes on each."""
    data, files, backup = tmp_path / "data", tmp_path / "files", tmp_path / "backup"
    srv = start_server(data)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            run, pool = _fill_with_labels_and_index(client, small_scenario)
            before = _read_back(client, run.id, pool.id)
            # Copied while the server runs: what it writes after the snapshot is not in the copy.
            assert cli(["store", "copy", postgres_uri, "--to-files", str(files), "--data-dir", str(data)]) == 0
            excluded = _repeat_exclusions(client, run.id, pool.id)
    finally:
        srv.stop()
    out = capsys.readouterr().out
    assert f"copied 1 run(s), 1 pool(s), 9000 row(s), 5 label(s)" in out, out
    assert before["index"][0] and before["labels"] and before["members"], before
    assert cli(["store", "check", "--store", postgres_uri, "--files", str(files)]) == 0

    on_postgres = start_server(tmp_path / "unused", store=postgres_uri, files=str(files))
    try:
        with Client(f"127.0.0.1:{on_postgres.port}", timeout=60) as client:
            assert _read_back(client, run.id, pool.id) == before
            assert _repeat_exclusions(client, run.id, pool.id) == excluded       # the copy's 50 picks
            # New pool rows: the next targeted suggestion rebuilds the index, under PostgreSQL's own kind of name.
            s = small_scenario.scenario
            client.get_pool(pool.id).add([f"new{i}" for i in range(10)], s.pool.embeddings[:10],
                                         probabilities=small_scenario.pool_probs[:10], progress=False)
            client.suggest(run.id, pool.id, budget=5, progress=False)
            excluded = _repeat_exclusions(client, run.id, pool.id)
            before = _read_back(client, run.id, pool.id)
            assert cli(["store", "backup", str(backup), "--store", postgres_uri, "--files", str(files)]) == 0
    finally:
        on_postgres.stop()
    assert before["rows"] == (3000, 6010) and before["index"][1] == 6010
    assert check_store(backup).ok
    restored = start_server(backup)
    try:
        with Client(f"127.0.0.1:{restored.port}", timeout=60) as client:
            assert _read_back(client, run.id, pool.id) == before
            assert _repeat_exclusions(client, run.id, pool.id) == excluded + 5   # the backup followed those 5 picks
    finally:
        restored.stop()
    # The rebuilt pool index came along byte for byte, under the name the embedded store reads.
    from blindspots_server.storage import open_store
    indexes = []
    for store in (open_store(postgres_uri, files=str(files)), EmbeddedStore(backup)):
        try:
            indexes.append(store.load_index(pool.id))
        finally:
            store.close()
    assert indexes[0] and indexes[0] == indexes[1]


def test_store_copy_refuses_a_store_that_holds_anything_and_writes_nothing(filled, tmp_path, postgres_uri, capsys):
    data, *_ = filled
    files = tmp_path / "files"
    assert cli(["store", "copy", postgres_uri, "--to-files", str(files), "--data-dir", str(data)]) == 0
    listing = sorted(p for p in files.rglob("*") if p.is_file())
    capsys.readouterr()
    assert cli(["store", "copy", postgres_uri, "--to-files", str(files), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "the destination store is not empty (1 runs row(s), 1 pools row(s)" in err, err
    assert sorted(p for p in files.rglob("*") if p.is_file()) == listing
    # A directory that holds anything is never opened (that would tidy a live server's directory).
    assert cli(["store", "copy", str(data), "--data-dir", str(data)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert check_store(data).ok


def test_store_copy_stops_at_a_damaged_file_and_leaves_the_destination_empty(filled, tmp_path, postgres_uri, capsys):
    data, run_id, *_ = filled
    part = sorted((data / "runs" / run_id).glob("part-*.parquet"))[1]
    original = part.read_bytes()
    raw = bytearray(original)
    raw[len(raw) // 2] ^= 0xFF
    part.write_bytes(bytes(raw))
    files = tmp_path / "files"
    assert cli(["store", "copy", postgres_uri, "--to-files", str(files), "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{part.relative_to(data).as_posix()}: stored data is damaged (its SHA-256 differs" in err, err
    assert [p for p in files.rglob("*") if p.is_file()] == []         # the files copied before it were removed
    copy = tmp_path / "copy"                                           # into a data directory: left empty
    assert cli(["store", "copy", str(copy), "--data-dir", str(data)]) == 1
    assert list(copy.iterdir()) == []
    # Nothing reached either catalog: copies from the repaired source go through afterwards.
    part.write_bytes(original)
    assert cli(["store", "copy", postgres_uri, "--to-files", str(files), "--data-dir", str(data)]) == 0
    assert cli(["store", "backup", str(copy), "--store", postgres_uri, "--files", str(files)]) == 0
    assert check_store(copy).ok


def test_a_job_running_in_the_source_is_failed_in_the_copy(filled, tmp_path, capsys):
    """The copy has no process running it: a pending or running job says so instead of hanging."""
    data, run_id, *_ = filled
    live = EmbeddedStore(data)                        # stands for a server with a diagnosis under way
    try:
        now = time.time()
        live.save_job(JobRecord(id="job_live", kind="diagnose", run_id=run_id, state="RUNNING",
                                fraction_done=0.4, stage="clustering failures", result_id="", error="",
                                created_at=now, updated_at=now))
        assert cli(["store", "copy", str(tmp_path / "copy"), "--data-dir", str(data)]) == 0
    finally:
        live.close()
    assert "1 job(s) pending or running in the source are failed in the copy" in capsys.readouterr().out
    copy = EmbeddedStore(tmp_path / "copy")
    try:
        job = copy.get_job("job_live")
        assert (job.state, job.stage, job.error) == (
            "FAILED", "failed", "the store was copied before the job finished; start it again")
    finally:
        copy.close()


def test_store_copy_writes_an_object_store_file_root(filled, postgres_uri):
    """A destination file root on an object store (fsspec ``memory://``, the path s3:// and gs://
    take): whole objects, each checked by the destination's own `check`."""
    import uuid

    from blindspots_server.storage import open_store
    from blindspots_server.storage.transfer import copy_between
    data, run_id, pool_id, diagnosis, _ = filled
    root = f"memory://bs-{uuid.uuid4().hex[:8]}"
    report = copy_between(str(data), None, postgres_uri, root)
    assert (report.runs, report.pools, report.rows) == (1, 1, 700) and report.files == check_store(data).files_checked
    store = open_store(postgres_uri, files=root)
    try:
        assert store.check().ok and store.check().files_checked == report.files
        assert store.get_run(run_id).num_rows == 400
        assert store.get_diagnosis(diagnosis.id).run_id == run_id
    finally:
        store.close()


def test_a_pool_index_that_changed_since_the_snapshot_is_left_out_and_rebuilt(filled, tmp_path, capsys):
    """The embedded store rewrites `index.faiss` in place, so a copy racing a rebuild sees other
    bytes than the snapshot's hash (here: the same, by damage). The index is derived data: the copy
    goes on without it, says so, and the server builds it again from the rows."""
    data, run_id, pool_id, *_ = filled
    index = data / "pools" / pool_id / "index.faiss"
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    index.write_bytes(bytes(raw))
    copy = tmp_path / "copy"
    assert cli(["store", "copy", str(copy), "--data-dir", str(data)]) == 0
    assert f"pool {pool_id}: its index changed since the snapshot" in capsys.readouterr().out
    assert check_store(copy).ok and not (copy / "pools" / pool_id / "index.faiss").exists()
    srv = start_server(copy)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            assert client.get_pool(pool_id).message.index.kind == ""
            # New rows start the pool's index build, which builds it whole from the rows.
            client.get_pool(pool_id).add([f"new{i}" for i in range(10)], np.ones((10, DIM)),
                                         probabilities=np.full((10, 2), 0.5), progress=False)
            deadline = time.monotonic() + 60
            while client.get_pool(pool_id).message.index.num_indexed != 310 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.get_pool(pool_id).message.index.num_indexed == 310
    finally:
        srv.stop()


def test_a_copy_taken_during_ingest_holds_whole_batches_only(tmp_path):
    """Batches acknowledged while the copy reads: each is in the copy whole or not at all, and the
    copy's row count, batch rows, sample ids and row files agree."""
    import threading

    data, copy = tmp_path / "data", tmp_path / "copy"
    srv = start_server(data)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
            rng = np.random.default_rng(0)

            def ingest(batches: int = 40, first: int = 4, size: int = 50) -> None:
                for b in range(first, first + batches):
                    run.log_predictions([f"b{b}-{i}" for i in range(size)], rng.normal(size=(size, DIM)),
                                        labels=rng.integers(0, 2, size), probabilities=np.full((size, 2), 0.5),
                                        progress=False)

            ingest(4, first=0)
            writer = threading.Thread(target=ingest)
            writer.start()
            try:
                assert cli(["store", "copy", str(copy), "--data-dir", str(data)]) == 0
            finally:
                writer.join()
            total = client.get_run(run.id).message.num_rows
    finally:
        srv.stop()
    assert check_store(copy).ok
    store = EmbeddedStore(copy)
    try:
        rows = store.get_run(run.id).num_rows
        in_batches = store._query("SELECT COALESCE(SUM(rows), 0), COUNT(*) FROM batches")[0]
        ids = store._query("SELECT COUNT(*) FROM sample_ids")[0][0]
        read = store.read_rows("run", run.id)
    finally:
        store.close()
    assert total == 44 * 50 and 200 <= rows <= total and rows % 50 == 0
    assert rows == in_batches[0] == ids == len(read) and in_batches[1] == rows // 50


@pytest.fixture
def read_only_view(tmp_path):
    """``view(directory)``: the directory bind-mounted read-only (a backup on a read-only volume or
    snapshot); skipped where this process may not mount."""
    import subprocess

    mounts = []

    def view(directory: Path) -> Path:
        at = tmp_path / f"ro{len(mounts)}"
        at.mkdir()
        done = subprocess.run(["mount", "--bind", str(directory), str(at)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
        mounts.append(at)
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(at)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        return at

    yield view
    for at in reversed(mounts):
        subprocess.run(["umount", str(at)], check=True)


def test_a_backup_on_a_read_only_file_system_is_checked_and_restored(filled, tmp_path, read_only_view, capsys):
    """SQLite's WAL readers create `-shm` beside the catalog, which a read-only volume refuses
    ("unable to open database file", reported as damage before); such a catalog is opened as
    immutable, since nothing can write it, unless an unmerged write-ahead log lies beside it."""
    import shutil

    data, run_id, *_ = filled
    view = read_only_view(data)
    with pytest.raises(OSError):
        (view / "probe").write_text("x")
    report = check_store(view)
    assert report.ok and report.files_checked == check_store(data).files_checked, report.problems
    copy = tmp_path / "copy"
    assert cli(["store", "copy", str(copy), "--data-dir", str(view)]) == 0
    assert check_store(copy).ok and EmbeddedStore(copy).get_run(run_id).num_rows == 400
    capsys.readouterr()
    assert cli(["store", "recover", "--data-dir", str(view)]) == 2        # it writes: said so, nothing changed
    assert "cannot be written" in capsys.readouterr().err
    # A directory copied while its store was open: its write-ahead log holds committed rows.
    live = EmbeddedStore(data)
    try:
        live.save_job(JobRecord(id="job_x", kind="diagnose", run_id=run_id, state="SUCCEEDED", fraction_done=1.0,
                                stage="done", result_id="", error="", created_at=0.0, updated_at=0.0))
        torn = tmp_path / "torn"
        shutil.copytree(data, torn)
        shutil.copytree(data, tmp_path / "torn_no_shm")
    finally:
        live.close()
    assert (torn / "catalog.sqlite-wal").stat().st_size > 0
    # With its shared-memory file SQLite reads the log on a read-only volume: the rows arrive.
    assert cli(["store", "copy", str(tmp_path / "copy2"), "--data-dir", str(read_only_view(torn))]) == 0
    assert EmbeddedStore(tmp_path / "copy2").get_job("job_x").state == "SUCCEEDED"
    # Without it the log could only be ignored: refused, not half read.
    (tmp_path / "torn_no_shm" / "catalog.sqlite-shm").unlink()
    torn_view = read_only_view(tmp_path / "torn_no_shm")
    capsys.readouterr()
    assert cli(["store", "copy", str(tmp_path / "copy3"), "--data-dir", str(torn_view)]) == 2
    assert "unmerged write-ahead log" in capsys.readouterr().err
    assert not check_store(torn_view).ok


def _two_projects(data: Path) -> dict:
    """A data directory with projects alpha and beta: each a run, a pool, a diagnosis, a round of
    picks with 4 of them labeled; alpha a second round. Per project: (run, pool, first picks,
    what a user reads back, its sets' ids)."""
    srv = start_server(data)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            rng = np.random.default_rng(5)
            made = {}
            for project, n in (("alpha", 300), ("beta", 200)):
                run = client.create_run(f"r-{project}", class_names=["a", "b"], embedding_dim=DIM, project=project)
                p = rng.uniform(0.05, 0.95, n)
                run.log_predictions([f"{project}-t{i}" for i in range(n)], rng.normal(size=(n, DIM)),
                                    labels=rng.integers(0, 2, n), probabilities=np.stack([p, 1 - p], 1),
                                    progress=False, batch_size=100)
                pool = client.create_pool(f"p-{project}", embedding_dim=DIM, num_classes=2, project=project)
                q = rng.uniform(0.05, 0.95, n)
                pool.add([f"{project}-u{i}" for i in range(n)], rng.normal(size=(n, DIM)),
                         probabilities=np.stack([q, 1 - q], 1), progress=False)
                run.diagnose(progress=False)
                picks = run.suggest(pool, budget=10, strategy="kcenter", progress=False)
                pool.import_labels(pd.DataFrame({"sample_id": picks["sample_id"][:4], "label": ["a"] * 4}),
                                   source="tool")
                made[project] = (run, pool, picks)
            run, pool, _ = made["alpha"]
            run.suggest(pool, budget=5, strategy="random", progress=False)
            return {project: (run, pool, picks, _read_back(client, run.id, pool.id),
                              client.list_suggestion_sets(run)["id"].tolist())
                    for project, (run, pool, picks) in made.items()}
    finally:
        srv.stop()


@pytest.mark.parametrize("into", ["data directory", "postgresql"])
def test_store_copy_of_one_project_takes_its_data_and_nothing_of_the_others(tmp_path, postgres_uri, into, capsys):
    """`store copy DEST --project alpha`: alpha's runs and pools with their rows, diagnosis, jobs,
    labels, index and suggestion sets read back as in the source; beta's stay behind; `store
    check` passes on the copy."""
    data = tmp_path / "data"
    made = _two_projects(data)
    run, pool, picks, *before = made["alpha"]
    elsewhere = made["beta"][2].attrs["suggestion_set"]
    second = before[1][1]
    assert before[1] == [picks.attrs["suggestion_set"], second]
    dest, files = (str(tmp_path / "alpha"), None) if into == "data directory" else (postgres_uri, tmp_path / "files")
    to_files = ["--to-files", str(files)] if files else []
    assert cli(["store", "copy", dest, *to_files, "--project", "alhpa", "--data-dir", str(data)]) == 2
    assert "no run or pool is in project alhpa; nothing was copied" in capsys.readouterr().err
    assert cli(["store", "copy", dest, *(["--to-files", str(files)] if files else []), "--project", "alpha",
                "--data-dir", str(data)]) == 0
    assert "copied 1 run(s), 1 pool(s), 600 row(s), 4 label(s)" in capsys.readouterr().out
    check = ["--data-dir", dest] if files is None else ["--store", dest, "--files", str(files)]
    assert cli(["store", "check", *check]) == 0
    copy = start_server(tmp_path / "unused", store=dest, files=str(files)) if files else start_server(Path(dest))
    try:
        with Client(f"127.0.0.1:{copy.port}", timeout=60) as client:
            assert _read_back(client, run.id, pool.id) == {**before[0], "runs": [run.id]}     # beta's run stayed
            assert client.list_suggestion_sets(run)["id"].tolist() == before[1]
            pd.testing.assert_frame_equal(client.get_suggestion_set(picks.attrs["suggestion_set"]), picks)
            assert [p.id for p in client.list_pools()] == [pool.id]
            # Both sets' 15 picks came along; the 4 labeled ones count as labeled, first.
            assert _repeat_exclusions(client, run.id, pool.id) == 15 - 4
            for gone in (lambda: client.get_run(made["beta"][0].id), lambda: client.get_suggestion_set(elsewhere)):
                with pytest.raises(NotFoundError):
                    gone()
    finally:
        copy.stop()


def test_a_project_copied_into_a_live_postgresql_store_that_holds_others(tmp_path, postgres_uri, capsys):
    """`store copy postgresql://... --project beta` into a store that already holds alpha, a server
    running on it: beta reads back there as in the source, alpha as before; the same project again,
    or rows of the same ids under another name, are refused before any file is written; a data
    directory that holds anything is still refused."""
    data, files = tmp_path / "data", tmp_path / "files"
    made = _two_projects(data)
    copy = ["store", "copy", postgres_uri, "--to-files", str(files), "--data-dir", str(data)]
    assert cli([*copy, "--project", "alpha"]) == 0
    live = start_server(tmp_path / "unused", store=postgres_uri, files=str(files))
    try:
        with Client(f"127.0.0.1:{live.port}", timeout=60) as client:
            alpha = _read_back(client, made["alpha"][0].id, made["alpha"][1].id)
            # Two copies of beta at once: the outer one's files are copied when the inner one runs
            # whole; the outer then finds beta's rows in its transaction, writes none, and removes
            # none of the files those rows name (the same paths).
            inner = []

            def copy_beta_meanwhile(line: str) -> None:
                if "writing the catalog" in line and not inner:
                    inner.append(cli([*copy, "--project", "beta"]))
            with pytest.raises(ValueError, match="already holds 1 run.s. of project 'beta'"):
                copy_between(str(data), None, postgres_uri, str(files), progress=copy_beta_meanwhile,
                             projects=["beta"])
            assert inner == [0]
            assert "copied 1 run(s), 1 pool(s), 400 row(s), 4 label(s)" in capsys.readouterr().out
            for project, (run, pool, picks, read, sets) in made.items():
                # Each project reads back as in the source, through the server that ran all along.
                runs = sorted(r.id for r in client.list_runs())
                assert _read_back(client, run.id, pool.id) == {**read, "runs": runs}
                assert client.list_suggestion_sets(run)["id"].tolist() == sets
                pd.testing.assert_frame_equal(client.get_suggestion_set(sets[0]), picks)
            assert runs == sorted(m[0].id for m in made.values())
            assert _read_back(client, made["alpha"][0].id, made["alpha"][1].id) == {**alpha, "runs": runs}
            run, pool = made["beta"][:2]
            assert _repeat_exclusions(client, run.id, pool.id) == 10 - 4       # beta's picks came along
    finally:
        live.stop()
    assert cli(["store", "check", "--store", postgres_uri, "--files", str(files)]) == 0
    listing = sorted(p for p in files.rglob("*") if p.is_file())
    capsys.readouterr()
    assert cli([*copy, "--project", "beta"]) == 2
    err = capsys.readouterr().err
    assert "the destination already holds 1 run(s) of project 'beta', 1 pool(s) of project 'beta'" in err, err
    # The same rows under another project's name: their ids (and so their files) are in the way.
    import psycopg
    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        for table in ("runs", "pools"):
            conn.execute(f"UPDATE {table} SET project = 'gamma' WHERE project = 'beta'")
    assert cli([*copy, "--project", "beta"]) == 2
    err = capsys.readouterr().err
    assert f"already has 1 runs row(s) with the ids this copy brings, e.g. '{run.id}'" in err, err
    assert sorted(p for p in files.rglob("*") if p.is_file()) == listing
    assert cli(["store", "check", "--store", postgres_uri, "--files", str(files)]) == 0


def test_a_project_copied_into_a_data_directory_that_holds_others(tmp_path, capsys):
    """`store copy DIR --project beta` into a data directory that holds alpha: refused while a server
    has it open (nothing changes), done once none has; both projects then read back there; a whole
    store still goes into an empty directory only."""
    data, dest = tmp_path / "data", tmp_path / "dest"
    made = _two_projects(data)
    copy = ["store", "copy", str(dest), "--data-dir", str(data)]
    assert cli([*copy, "--project", "alpha"]) == 0
    live = start_server(dest)
    try:
        before = _files(dest)
        capsys.readouterr()
        # Another process, as the CLI is (this one shares the server's lock).
        out = subprocess.run([sys.executable, "-m", "blindspots.cli", *copy, "--project", "beta"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and f"the data directory {dest} is in use by another process" in out.stderr
        assert _files(dest) == before and [r.project for r in live.store.list_runs(None, 10, 0)] == ["alpha"]
    finally:
        live.stop()
    # A copy that fails (a damaged source file) takes back what it wrote, and only that.
    part = sorted((data / "runs" / made["beta"][0].id).glob("part-*.parquet"))[-1]
    intact = part.read_bytes()
    _flip_middle_byte(part)
    assert cli([*copy, "--project", "beta"]) == 1
    assert _files(dest) == before and check_store(dest).ok
    part.write_bytes(intact)
    assert cli([*copy, "--project", "beta"]) == 0
    assert cli(["store", "check", "--data-dir", str(dest)]) == 0
    capsys.readouterr()
    assert cli([*copy, "--project", "beta"]) == 2
    assert "already holds 1 run(s) of project 'beta'" in capsys.readouterr().err
    assert cli(copy) == 2
    assert "a whole store goes into a new data directory or an empty database" in capsys.readouterr().err
    srv = start_server(dest)
    try:
        with Client(f"127.0.0.1:{srv.port}", timeout=60) as client:
            runs = sorted(m[0].id for m in made.values())
            for run, pool, picks, read, sets in made.values():
                assert _read_back(client, run.id, pool.id) == {**read, "runs": runs}
                assert client.list_suggestion_sets(run)["id"].tolist() == sets
                pd.testing.assert_frame_equal(client.get_suggestion_set(sets[0]), picks)
    finally:
        srv.stop()
