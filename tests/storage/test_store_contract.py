"""The `Store` contract, run against every backend on real files and a real PostgreSQL.

Backends: the embedded store (SQLite + Parquet), and the PostgreSQL catalog with
row files on a local directory and on an fsspec ``memory://`` filesystem (the
write-once object path that s3:// and gs:// take). The PostgreSQL server comes
from tests/pgtest.py; these tests fail, not skip, when there is none.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

from blindspots_server.storage import (MAX_METADATA_COLUMNS, Conflict, DataLoss, DiagnosisRecord, DuplicateSampleIds,
                                       JobBacklog, JobRecord, NotFound, PoolRecord, RowFile, RunRecord, Store,
                                       SuggestionSetRecord, TooManyColumns, open_store)
from blindspots_server.storage.file_root import open_location
from blindspots_server.storage.files import read_parquet
from blindspots_server.storage.maintenance import check_store
from blindspots_server.storage.rows import ParquetEmbeddings, build_table, to_row_data

BACKENDS = ["embedded", "postgres", "postgres+memory"]


@pytest.fixture(params=BACKENDS)
def open_again(request, tmp_path):
    """A function opening the backend's store on the same location each call (a restart, or a replica)."""
    opened: list[Store] = []
    if request.param == "embedded":
        location, files = str(tmp_path / "data"), None
    else:
        location = request.getfixturevalue("postgres_uri")
        files = str(tmp_path / "files") if request.param == "postgres" else f"memory://bs-{uuid.uuid4().hex[:8]}"

    def factory() -> Store:
        return open_store(location, files=files) if files else open_store(location)

    def tracked() -> Store:
        store = factory()
        opened.append(store)
        return store

    tracked.backend = request.param
    tracked.location, tracked.files = location, files
    yield tracked
    for store in opened:
        store.close()


@pytest.fixture
def store(open_again) -> Store:
    return open_again()


def _run(store: Store, run_id: str = "run_a", dim: int = 4, project: str = "p") -> RunRecord:
    return store.create_run(RunRecord(id=run_id, name="a", project=project, model_name="m", model_version="1",
                                      dataset_name="d", class_names=["x", "y"], embedding_dim=dim,
                                      created_at=time.time()))


def _pool(store: Store, pool_id: str = "pool_a", dim: int = 4, project: str = "p") -> PoolRecord:
    return store.create_pool(PoolRecord(id=pool_id, name="p", project=project, embedding_dim=dim, num_classes=0,
                                        created_at=time.time()))


def _batch(ids, dim=4, meta=None, start=0):
    n = len(ids)
    emb = np.arange(start, start + n * dim, dtype=np.float32).reshape(n, dim)
    return build_table(list(ids), emb, np.zeros(n), np.full((n, 2), 0.5, np.float32), None, meta or {})


def test_batches_roundtrip_in_order_and_dedupe(store):
    _run(store)
    meta = {"region": ("string", pa.array(["n", "s"]))}
    assert store.ingest_batch("run", "run_a", "b1", _batch(["a", "b"], meta=meta), {"region": "string"}).stored
    assert store.ingest_batch("run", "run_a", "b2", _batch(["c"]), {}).total_rows == 3
    again = store.ingest_batch("run", "run_a", "b1", _batch(["a", "b"], meta=meta), {"region": "string"})
    assert not again.stored and again.total_rows == 3
    rows = to_row_data(store.read_rows("run", "run_a"))
    assert rows.sample_ids.tolist() == ["a", "b", "c"]
    assert rows.metadata["region"].tolist()[:2] == ["n", "s"] and rows.metadata["region"].isna().tolist()[2]
    np.testing.assert_array_equal(rows.embeddings[2], np.arange(4, dtype=np.float32))
    run = store.get_run("run_a")
    assert run.num_rows == 3 and run.metadata_schema == {"region": "string"}


def test_type_conflict_is_rejected_and_nothing_stored(open_again, tmp_path):
    store = open_again()
    _run(store)
    store.ingest_batch("run", "run_a", "b1", _batch(["a"], meta={"price": ("number", pa.array([1.0]))}),
                       {"price": "number"})
    with pytest.raises(Conflict, match="price"):
        store.ingest_batch("run", "run_a", "b2", _batch(["b"], meta={"price": ("string", pa.array(["x"]))}),
                           {"price": "string"})
    assert store.get_run("run_a").num_rows == 1
    assert store.read_rows("run", "run_a").column("sample_id").to_pylist() == ["a"]
    assert [f.rows for f in store.row_files("run", "run_a")] == [1]
    # Nor is a file left behind where the files live on a local disk.
    root = {"embedded": tmp_path / "data", "postgres": tmp_path / "files"}.get(open_again.backend)
    if root is not None:
        assert len(list(root.rglob("*.parquet"))) == 1


def test_a_sample_id_stored_before_with_other_content_rejects_the_whole_batch(store):
    _pool(store)
    store.ingest_batch("pool", "pool_a", "b1", _batch(["a", "b"]), {})
    with pytest.raises(DuplicateSampleIds, match=r"^sample_ids: id 'b' is already stored with other content") as err:
        store.ingest_batch("pool", "pool_a", "b2", _batch(["c", "b", "d"], start=100), {})
    assert err.value.sample_id == "b"
    assert store.get_pool("pool_a").num_rows == 2
    assert store.read_rows("pool", "pool_a").column("sample_id").to_pylist() == ["a", "b"]
    # The ids of the rejected batch were not kept either: they can come in a later batch.
    assert store.ingest_batch("pool", "pool_a", "b3", _batch(["c", "d"]), {}).total_rows == 4


def test_rows_stored_before_with_the_same_content_are_skipped_per_row(store):
    """Re-logging the same rows with another batch size stores nothing twice."""
    _run(store)
    rows = _batch([f"s{i}" for i in range(6)], meta={"region": ("string", pa.array(list("nnssnx")))})
    schema = {"region": "string"}
    store.ingest_batch("run", "run_a", "size4-0", rows.slice(0, 4), schema)
    again = store.ingest_batch("run", "run_a", "size3-0", rows.slice(0, 3), schema)   # all three known
    assert (again.stored, again.rows_already_stored, again.total_rows) == (False, 3, 4)
    mixed = store.ingest_batch("run", "run_a", "size3-1", rows.slice(3, 3), schema)   # s3 known, s4 s5 new
    assert (mixed.stored, mixed.rows_already_stored, mixed.total_rows) == (True, 1, 6)
    table = store.read_rows("run", "run_a")
    assert table.column("sample_id").to_pylist() == [f"s{i}" for i in range(6)]
    assert table.column("m.region").to_pylist() == list("nnssnx")
    # One changed value (here the label) in an otherwise re-sent batch: a conflict naming the id.
    changed = rows.set_column(rows.schema.get_field_index("label"), "label",
                              pa.array([0, 0, 1, 0, 0, 0], pa.int32()))
    with pytest.raises(DuplicateSampleIds, match="'s2' is already stored with other content"):
        store.ingest_batch("run", "run_a", "size6-0", changed, schema)
    assert store.get_run("run_a").num_rows == 6


def test_unknown_ids_raise_not_found(store):
    for call in (lambda: store.get_run("missing"), lambda: store.get_pool("missing"),
                 lambda: store.ingest_batch("pool", "missing", "b", _batch(["a"]), {}),
                 lambda: store.read_rows("run", "missing"), lambda: store.latest_diagnosis("missing"),
                 lambda: store.get_diagnosis("missing"), lambda: store.get_job("missing"),
                 lambda: store.read_suggestion_set("missing")):
        with pytest.raises(NotFound):
            call()


def test_column_subsets_read_only_those_columns(open_again):
    store = open_again()
    _run(store)
    meta = {"region": ("string", pa.array(["n", "s"]))}
    store.ingest_batch("run", "run_a", "b1", _batch(["a", "b"], meta=meta), {"region": "string"})
    store.ingest_batch("run", "run_a", "b2", _batch(["c"]), {})
    subset = store.read_rows("run", "run_a", ["sample_id", "embedding"])
    assert subset.column_names == ["sample_id", "embedding"] and subset.num_rows == 3
    assert "m.region" in store.read_rows("run", "run_a").column_names
    again = store.read_rows("run", "run_a", ["embedding", "m.region"])      # from the cached whole table
    assert again.column_names == ["embedding", "m.region"]
    assert again.column("m.region").to_pylist() == ["n", "s", None]
    cold = open_again().read_rows("run", "run_a", ["sample_id", "m.region"])    # nothing cached: the files
    assert cold.column_names == ["sample_id", "m.region"] and cold.column("m.region").to_pylist() == ["n", "s", None]


def test_row_data_read_file_by_file_equals_the_table_read(open_again):
    store = open_again()
    _run(store)
    meta = {"region": ("string", pa.array(["n", "s"]))}
    store.ingest_batch("run", "run_a", "b1", _batch(["a", "b"], meta=meta), {"region": "string"})
    store.ingest_batch("run", "run_a", "b2", _batch(["c"], start=8), {})
    priced = {"price": ("number", pa.array([1.0, 2.0]))}
    store.ingest_batch("run", "run_a", "b3", _batch(["d", "e"], start=12, meta=priced), {"price": "number"})
    for reader in (store, open_again()):           # warm (a cached table exists) and cold
        whole = to_row_data(reader.read_rows("run", "run_a"))
        rows = reader.read_row_data("run", "run_a")
        assert rows.sample_ids.tolist() == ["a", "b", "c", "d", "e"] == whole.sample_ids.tolist()
        np.testing.assert_array_equal(rows.embeddings, whole.embeddings)
        assert rows.embeddings.dtype == np.float32 and rows.embeddings.flags.c_contiguous
        np.testing.assert_array_equal(rows.embeddings[2], [8, 9, 10, 11])
        np.testing.assert_array_equal(rows.probabilities, whole.probabilities)
        np.testing.assert_array_equal(rows.labels, whole.labels)
        assert rows.uris.tolist() == whole.uris.tolist()
        assert rows.metadata.equals(whole.metadata) and list(rows.metadata.columns) == ["region", "price"]
    subset = store.read_row_data("run", "run_a", ["sample_id", "embedding", "m.price"])
    assert subset.probabilities is None and subset.labels is None and list(subset.metadata.columns) == ["price"]
    assert subset.metadata["price"].tolist()[3:] == [1.0, 2.0] and subset.embeddings.shape == (5, 4)
    _pool(store)
    empty = store.read_row_data("pool", "pool_a")
    assert len(empty) == 0 and len(empty.embeddings) == 0


def test_row_files_list_the_batch_files_that_hold_the_rows_in_read_order(open_again):
    store = open_again()
    _pool(store)
    assert store.row_files("pool", "pool_a") == []
    store.ingest_batch("pool", "pool_a", "b1", _batch(["a", "b", "c"]), {})
    store.ingest_batch("pool", "pool_a", "b2", _batch(["d"], start=40), {})
    store.ingest_batch("pool", "pool_a", "b3", _batch(["c", "e", "f"], start=8), {})   # c stored before: skipped
    assert store.read_rows("pool", "pool_a").column("sample_id").to_pylist() == list("abcdef")
    for reader in (store, open_again()):            # the catalog's answer, not this process's memory
        files = reader.row_files("pool", "pool_a")
        assert [f.rows for f in files] == [3, 1, 2] and all(isinstance(f, RowFile) for f in files)
        # Opened by location alone, as a worker process does: together they are read_rows, in its order.
        tables = []
        for f in files:
            with open_location(f.location, "pool") as source:
                tables.append(read_parquet(source, "pool"))
        from_files = to_row_data(pa.concat_tables(tables))
        stored = reader.read_row_data("pool", "pool_a")
        assert from_files.sample_ids.tolist() == stored.sample_ids.tolist() == list("abcdef")
        np.testing.assert_array_equal(from_files.embeddings, stored.embeddings)
        np.testing.assert_array_equal(ParquetEmbeddings(files).read(0, 6), stored.embeddings)
        np.testing.assert_array_equal(ParquetEmbeddings(files).read(2, 5), stored.embeddings[2:5])
    _run(store)
    store.ingest_batch("run", "run_a", "r1", _batch(["x", "y"], start=100), {})
    run_files = store.row_files("run", "run_a")
    assert [f.rows for f in run_files] == [2] and run_files[0].location not in {f.location for f in files}
    with pytest.raises(DataLoss, match="catalog recorded 5"):      # a file that is not what the catalog says
        ParquetEmbeddings([RowFile(files[0].location, 5)])
    with pytest.raises(NotFound):
        store.row_files("pool", "missing")


def test_list_runs_filters_by_project_and_pages(store):
    for i, project in enumerate(["p", "q", "p"]):
        _run(store, f"run_{i}", project=project)
    assert [r.id for r in store.list_runs(None, 10, 0)] == ["run_0", "run_1", "run_2"]
    assert [r.id for r in store.list_runs(["p"], 10, 0)] == ["run_0", "run_2"]
    assert [r.id for r in store.list_runs(["p", "q"], 1, 1)] == ["run_1"]
    assert store.list_runs([], 10, 0) == []
    _pool(store)
    assert [p.id for p in store.list_pools(["p"], 10, 0)] == ["pool_a"]


def test_index_blobs_roundtrip_and_are_replaced(open_again):
    store = open_again()
    _pool(store)
    assert store.load_index("pool_a") is None
    store.save_index("pool_a", b"first", "flat", 10, "Flat")
    store.save_index("pool_a", b"second" * 100, "ivf", 20, "IVF")
    pool = open_again().get_pool("pool_a")
    assert (pool.index_kind, pool.index_rows, pool.index_description) == ("ivf", 20, "IVF")
    assert open_again().load_index("pool_a") == b"second" * 100


def test_diagnoses_jobs_and_suggestion_sets_roundtrip(store):
    _run(store)
    _pool(store)
    t0 = time.time()
    for i in range(2):
        store.save_diagnosis(DiagnosisRecord(id=f"diag_{i}", run_id="run_a", created_at=t0 + i, job_id="job_x",
                                             payload=bytes([i, 0, 255])),
                             pa.table({"region": pa.array([0, 1, -1], pa.int32()), "failed": [True, False, True]}))
    assert store.latest_diagnosis("run_a").id == "diag_1"
    assert store.get_diagnosis("diag_0").payload == bytes([0, 0, 255])
    assert [d.id for d in store.list_diagnoses("run_a")] == ["diag_0", "diag_1"]
    assert store.diagnosis_rows("diag_1").column("region").to_pylist() == [0, 1, -1]
    job = JobRecord(id="job_x", kind="diagnose", run_id="run_a", state="RUNNING", fraction_done=0.5, stage="fit",
                    result_id="", error="", created_at=t0, updated_at=t0)
    store.save_job(job)
    job.state, job.result_id, job.fraction_done = "SUCCEEDED", "diag_1", 1.0
    store.save_job(job)
    assert store.get_job("job_x") == job
    record = SuggestionSetRecord(id="set_1", run_id="run_a", pool_id="pool_a", diagnosis_id="diag_1",
                                 strategy="targeted", budget=2, num_candidates=2, created_at=t0, name="r1")
    # A set's own blindspots.* schema metadata (Suggest's answer) is kept; other keys are not.
    table = pa.table({"sample_id": ["p1", "p2"], "score": [0.9, 0.1]}).replace_schema_metadata(
        {b"blindspots.answer": b"\x00answer", b"pandas": b"{}"})
    store.save_suggestion_set(record, table)
    got, table = store.read_suggestion_set("set_1")
    assert got == record == store.get_suggestion_set("set_1") and table.column("sample_id").to_pylist() == ["p1", "p2"]
    with pytest.raises(NotFound, match="suggestion set 'set_x'"):
        store.get_suggestion_set("set_x")
    assert table.schema.metadata == {b"blindspots.answer": b"\x00answer"}
    # The record a caller has just read is used as given (not read again); another set's is refused.
    known = store.get_suggestion_set("set_1")
    assert store.read_suggestion_set("set_1", known)[0] is known
    with pytest.raises(ValueError, match="'set_1', not 'set_x'"):
        store.read_suggestion_set("set_x", known)
    assert store.suggested_ids("run_a", "pool_a") == {"p1", "p2"}
    assert store.suggested_ids("run_a", "other") == set()
    assert store.size_bytes() > 0
    # Listed oldest first by run, by pool or both, paged; a set with no metadata reads with none.
    _run(store, "run_b")
    _pool(store, "pool_b")
    for i, (run_id, pool_id) in enumerate((("run_b", "pool_a"), ("run_a", "pool_b"), ("run_a", "pool_a"))):
        store.save_suggestion_set(SuggestionSetRecord(
            id=f"set_{9 - i}", run_id=run_id, pool_id=pool_id, diagnosis_id="", strategy="margin", budget=1,
            num_candidates=1, created_at=t0 + 1 + i, name=""), pa.table({"sample_id": [f"q{i}"]}))
    assert store.read_suggestion_set("set_9")[1].schema.metadata is None
    assert [r.id for r in store.list_suggestion_sets("run_a", "", 10, 0)] == ["set_1", "set_8", "set_7"]
    assert [r.id for r in store.list_suggestion_sets("", "pool_a", 10, 0)] == ["set_1", "set_9", "set_7"]
    assert [r.id for r in store.list_suggestion_sets("run_a", "pool_a", 10, 0)] == ["set_1", "set_7"]
    assert [r.id for r in store.list_suggestion_sets("run_a", "", 1, 1)] == ["set_8"]
    assert store.list_suggestion_sets("run_a", "pool_a", 10, 0)[0] == record
    assert store.list_suggestion_sets("run_x", "", 10, 0) == []


def _drop_request_ids(open_again) -> None:
    """Make the catalog one from before request ids: no column, no index."""
    _alter_catalog(open_again, [q for table in ("runs", "pools", "suggestion_sets")
                                for q in (f"DROP INDEX {table}_request", f"ALTER TABLE {table} DROP COLUMN request_id")])


def test_a_set_is_found_by_its_request_id_and_one_request_makes_one_set(open_again):
    store = open_again()
    _run(store)
    _pool(store)
    _pool(store, "pool_b")
    t0 = time.time()
    old = SuggestionSetRecord(id="set_old", run_id="run_a", pool_id="pool_a", diagnosis_id="", strategy="margin",
                              budget=1, num_candidates=1, created_at=t0, name="")
    store.save_suggestion_set(old, pa.table({"sample_id": ["p0"]}))
    store.close()
    _drop_request_ids(open_again)
    store = open_again()            # an older catalog gains the columns: its records have no request id
    assert store.get_suggestion_set("set_old").request_id == ""
    assert store.get_run("run_a").request_id == "" and store.get_pool("pool_a").request_id == ""
    record = SuggestionSetRecord(id="set_1", run_id="run_a", pool_id="pool_a", diagnosis_id="", strategy="margin",
                                 budget=2, num_candidates=2, created_at=t0 + 1, name="", request_id="req-1")
    store.save_suggestion_set(record, pa.table({"sample_id": ["p1", "p2"]}))
    assert store.find_suggestion_set("run_a", "pool_a", "req-1") == record == store.get_suggestion_set("set_1")
    assert store.find_suggestion_set("run_a", "pool_b", "req-1") is None
    assert store.find_suggestion_set("run_a", "pool_a", "req-2") is None
    # One set per request of a run and pool, whoever writes: a second is refused and leaves nothing.
    twin = SuggestionSetRecord(id="set_2", run_id="run_a", pool_id="pool_a", diagnosis_id="", strategy="margin",
                               budget=2, num_candidates=1, created_at=t0 + 2, name="", request_id="req-1")
    with pytest.raises(Exception):
        store.save_suggestion_set(twin, pa.table({"sample_id": ["p3"]}))
    assert [r.id for r in store.list_suggestion_sets("run_a", "pool_a", 10, 0)] == ["set_old", "set_1"]
    assert store.suggested_ids("run_a", "pool_a") == {"p0", "p1", "p2"}
    assert not store.file_root.exists("suggestions/set_2.parquet")
    report = store.check() if open_again.backend != "embedded" else check_store(open_again.location)
    assert report.ok, report
    # The same request id for another pool is another set; sets without one never collide.
    store.save_suggestion_set(SuggestionSetRecord(
        id="set_3", run_id="run_a", pool_id="pool_b", diagnosis_id="", strategy="margin", budget=1,
        num_candidates=1, created_at=t0 + 3, name="", request_id="req-1"), pa.table({"sample_id": ["b1"]}))
    for i in (4, 5):
        store.save_suggestion_set(SuggestionSetRecord(
            id=f"set_{i}", run_id="run_a", pool_id="pool_a", diagnosis_id="", strategy="margin", budget=1,
            num_candidates=1, created_at=t0 + i, name=""), pa.table({"sample_id": [f"p{i}"]}))
    store.close()
    again = open_again()
    assert again.find_suggestion_set("run_a", "pool_b", "req-1").id == "set_3"
    assert again.find_suggestion_set("run_a", "pool_a", "req-1") == record


def test_a_run_or_pool_is_found_by_the_request_that_created_it(open_again):
    store = open_again()
    t0 = time.time()
    run = RunRecord(id="run_r", name="r", project="p", model_name="m", model_version="v1", dataset_name="",
                    class_names=["a", "b"], embedding_dim=4, created_at=t0, request_id="job-1")
    store.create_run(run)
    store.create_run(RunRecord(id="run_s", name="r", project="q", model_name="", model_version="",
                               dataset_name="", class_names=["a", "b"], embedding_dim=4, created_at=t0,
                               request_id="job-1"))
    pool = PoolRecord(id="pool_r", name="u", project="p", embedding_dim=4, num_classes=2, created_at=t0,
                      request_id="job-1")
    store.create_pool(pool)
    _run(store, "run_plain")
    assert store.find_created("run", "p", "job-1") == run == store.get_run("run_r")
    assert store.find_created("run", "q", "job-1").id == "run_s"
    assert store.find_created("pool", "p", "job-1") == pool
    assert store.find_created("run", "p", "job-2") is None and store.find_created("pool", "q", "job-1") is None
    assert store.get_run("run_plain").request_id == ""
    # One run per request of a project, whoever writes.
    with pytest.raises(Exception):
        store.create_run(RunRecord(id="run_t", name="r", project="p", model_name="", model_version="",
                                   dataset_name="", class_names=["a", "b"], embedding_dim=4, created_at=t0,
                                   request_id="job-1"))
    with pytest.raises(NotFound):
        store.get_run("run_t")
    # Kept across a restart; deleting the run frees its request id.
    store.close()
    again = open_again()
    assert again.find_created("run", "p", "job-1") == run
    again.delete("run", "run_r")
    assert again.find_created("run", "p", "job-1") is None


def test_recent_diagnoses_list_each_runs_latest_newest_first(store):
    table = pa.table({"region": pa.array([0], pa.int32()), "failed": [True]})
    t0 = time.time()
    # run_b: diagnosed first and last; run_c: once in between; run_a: twice at one instant.
    for run_id in ("run_a", "run_b", "run_c"):
        _run(store, run_id)
    for run_id, diag_id, at in (("run_b", "d_b0", 0), ("run_a", "d_a0", 1), ("run_a", "d_a1", 1),
                                ("run_c", "d_c0", 2), ("run_b", "d_b1", 3)):
        store.save_diagnosis(DiagnosisRecord(id=diag_id, run_id=run_id, created_at=t0 + at, job_id="",
                                             payload=b"x"), table)
    assert store.recent_diagnoses(10) == [("run_b", "d_b1", t0 + 3), ("run_c", "d_c0", t0 + 2),
                                          ("run_a", "d_a1", t0 + 1)]
    assert [r for r, _, _ in store.recent_diagnoses(2)] == ["run_b", "run_c"]
    # The same tie-break as latest_diagnosis.
    assert store.latest_diagnosis("run_a").id == "d_a1"
    store.delete("run", "run_b")
    assert store.recent_diagnoses(10) == [("run_c", "d_c0", t0 + 2), ("run_a", "d_a1", t0 + 1)]


def test_a_damaged_row_file_is_data_loss(open_again, tmp_path):
    if open_again.backend == "postgres+memory":
        pytest.skip("flips a byte in a local file")
    store = open_again()
    _run(store, dim=32)
    store.ingest_batch("run", "run_a", "b1", _batch([f"s{i}" for i in range(200)], dim=32), {})
    part = next(p for p in tmp_path.rglob("part-*.parquet"))
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 3] ^= 0xFF               # inside the embedding pages
    part.write_bytes(bytes(raw))
    with pytest.raises(DataLoss, match="run 'run_a'"):
        open_again().read_rows("run", "run_a")


@pytest.mark.parametrize("read", ["read_rows", "read_row_data"])
def test_a_pool_deleted_while_its_files_are_read_is_not_found_not_data_loss(open_again, read):
    """A delete that lands between two batch files of a read (from another replica, or another
    call on this one) takes the files the read has yet to open: the read ends NotFound, a
    deletion, not DataLoss, which would send an operator looking for damage."""
    store, other = open_again(), open_again()
    _pool(store)
    for k in range(4):
        store.ingest_batch("pool", "pool_a", f"b{k}", _batch([f"p{k}-{i}" for i in range(5)], start=k), {})
    stages = []

    def progress(fraction, stage):
        stages.append(stage)
        if stage == "batch file 3 of 4":
            other.delete("pool", "pool_a", force=True)

    with pytest.raises(NotFound, match="pool 'pool_a'"):
        getattr(store, read)("pool", "pool_a", progress=progress)
    assert stages[-1] == "batch file 3 of 4", stages       # the delete came between files, as meant
    with pytest.raises(NotFound):
        store.read_rows("pool", "pool_a")


def test_labels_keep_the_newest_per_sample_and_name_unknown_ids(store):
    _pool(store)
    store.ingest_batch("pool", "pool_a", "b1", _batch(["a", "b", "c"]), {})
    assert store.unknown_sample_ids("pool", "pool_a", ["a", "zz", "c", "yy"]) == ["zz", "yy"]
    first = store.save_labels("pool", "pool_a", ["a", "b", "a"], ["x", "y", "y"], "tool:1", 10.0)
    assert (first.stored, first.replaced, first.total) == (2, 0, 2)          # the last label given for a wins
    second = store.save_labels("pool", "pool_a", ["b", "c"], ["x", "x"], "tool:2", 20.0)
    assert (second.stored, second.replaced, second.total) == (2, 1, 3)
    labels = {r.sample_id: (r.label, r.source) for r in store.read_labels("pool", "pool_a")}
    assert labels == {"a": ("y", "tool:1"), "b": ("x", "tool:2"), "c": ("x", "tool:2")}
    assert store.labeled_ids("pool", "pool_a") == {"a", "b", "c"}
    assert store.labeled_ids("run", "run_a") == set()


def test_metadata_columns_are_limited_per_target_over_all_batches(store):
    _run(store)
    wide = {f"c{i}": ("number", pa.array([1.0])) for i in range(MAX_METADATA_COLUMNS - 1)}
    store.ingest_batch("run", "run_a", "b1", _batch(["a"], meta=wide), {k: "number" for k in wide})
    more = {f"d{i}": ("number", pa.array([1.0])) for i in range(2)}
    with pytest.raises(TooManyColumns, match="per run"):
        store.ingest_batch("run", "run_a", "b2", _batch(["b"], meta=more), {k: "number" for k in more})
    assert store.get_run("run_a").num_rows == 1


def test_a_named_lock_excludes_its_holders_and_no_other_name(open_again):
    """Store.exclusive: a second holder of the same name waits (a replica too, on a shared
    store: another store object on the same location) and is told so before it waits; another
    name does not wait."""
    import threading

    first = open_again()
    second = open_again() if open_again.backend != "embedded" else first   # embedded: one process, one store
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.exclusive("k"):
            order.append("first in")
            holding.set()
            release.wait(30)
            order.append("first out")

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(30)
    told: list[str] = []
    with second.exclusive("other name", waiting=lambda: told.append("other name")):
        order.append("other name")
    with second.exclusive("unrelated"):
        pass
    done = threading.Event()

    def wait_for_k() -> None:
        with second.exclusive("k", waiting=lambda: told.append("k")):
            order.append("second in")
        done.set()

    waiter = threading.Thread(target=wait_for_k)
    waiter.start()
    assert not done.wait(0.5), "the second holder got the lock while the first held it"
    release.set()
    t.join(30)
    assert done.wait(30)
    waiter.join(30)
    assert order == ["first in", "other name", "first out", "second in"], order
    assert told == ["k"], "told of the wait once, and only where there was one"
    for store in {id(first): first, id(second): second}.values():   # names no caller uses are let go
        assert store.__dict__.get("_named_locks") == {}


def _stored_files(store: Store) -> list[str]:
    """Every data file the backend holds (relative paths; catalogs and tmp/ left out)."""
    if hasattr(store, "files"):
        return store.files.listing()
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")
                  if p.is_file() and p.parts[len(store.root.parts)] in ("runs", "pools", "diagnoses", "suggestions"))


def _fill(store: Store, run_id: str, pool_id: str, set_id: str) -> None:
    """A run and a pool with rows, a diagnosis, labels, an index and a suggestion set joining them."""
    _run(store, run_id)
    _pool(store, pool_id)
    for b in range(2):
        store.ingest_batch("run", run_id, f"b{b}", _batch([f"{run_id}-{b}-{i}" for i in range(5)]), {})
        store.ingest_batch("pool", pool_id, f"b{b}", _batch([f"{pool_id}-{b}-{i}" for i in range(5)]), {})
    store.save_diagnosis(DiagnosisRecord(id=f"diag_{run_id}", run_id=run_id, created_at=time.time(), job_id="",
                                         payload=b"d"), pa.table({"region": pa.array([0] * 10, pa.int32())}))
    store.save_index(pool_id, b"index" * 10, "flat", 10, "Flat")
    store.save_labels("pool", pool_id, [f"{pool_id}-0-0"], ["x"], "tool", 1.0)
    store.save_labels("run", run_id, [f"{run_id}-0-0"], ["y"], "tool", 1.0)
    store.save_suggestion_set(SuggestionSetRecord(id=set_id, run_id=run_id, pool_id=pool_id, diagnosis_id="",
                                                  strategy="margin", budget=1, num_candidates=1,
                                                  created_at=time.time(), name=""),
                              pa.table({"sample_id": [f"{pool_id}-1-0"]}))


def test_deleting_a_suggestion_set_releases_its_picks_and_removes_its_file_alone(open_again):
    store = open_again()
    _fill(store, "run_a", "pool_a", "set_a")
    store.save_suggestion_set(SuggestionSetRecord(id="set_b", run_id="run_a", pool_id="pool_a", diagnosis_id="",
                                                  strategy="margin", budget=2, num_candidates=2,
                                                  created_at=time.time(), name=""),
                              pa.table({"sample_id": ["pool_a-0-1", "pool_a-0-2"]}))
    files = _stored_files(store)
    out = store.delete_suggestion_set("set_b")
    assert (out.target, out.id, out.rows, out.suggestion_sets, out.files) == ("suggestion_set", "set_b", 2, 1, 1)
    assert out.bytes > 0
    again = open_again()                          # another replica, or after a restart
    assert again.suggested_ids("run_a", "pool_a") == {"pool_a-1-0"}       # set_a's pick stays excluded
    assert [r.id for r in again.list_suggestion_sets("run_a", "", 10, 0)] == ["set_a"]
    for gone in (lambda: again.get_suggestion_set("set_b"), lambda: again.read_suggestion_set("set_b"),
                 lambda: store.delete_suggestion_set("set_b")):
        with pytest.raises(NotFound, match="suggestion set 'set_b'"):
            gone()
    assert _stored_files(again) == [f for f in files if "set_b" not in f] and len(files) == len(_stored_files(again)) + 1
    assert again.read_suggestion_set("set_a")[1].column("sample_id").to_pylist() == ["pool_a-1-0"]
    # No file row left without its file, nor a file without its row.
    report = again.check() if open_again.backend != "embedded" else check_store(open_again.location)
    assert report.ok and not report.notes, (report.problems, report.notes)


def test_deleting_a_run_removes_it_and_all_it_owns_and_nothing_else(open_again):
    store = open_again()
    _fill(store, "run_a", "pool_a", "set_a")
    _fill(store, "run_b", "pool_b", "set_b")
    before = _stored_files(store)
    with pytest.raises(Conflict, match="1 label"):
        store.delete("run", "run_a")                     # labels cost money: not without force
    assert store.read_rows("run", "run_a").num_rows == 10 and _stored_files(store) == before
    sizes = store.stored_bytes("run", ["run_a", "run_b", "run_none"])
    out = store.delete("run", "run_a", force=True)
    assert (out.rows, out.diagnoses, out.suggestion_sets, out.labels) == (10, 1, 1, 1)
    assert sizes["run_a"] == out.bytes and sizes["run_b"] > 0 and sizes["run_none"] == 0
    gone = sorted(set(before) - set(_stored_files(store)))
    assert out.files == len(gone) == 4 and out.bytes > 0        # 2 batches, the diagnosis, the set
    assert all(p.startswith(("runs/run_a/", "diagnoses/diag_run_a", "suggestions/set_a")) for p in gone)
    again = open_again()                                        # a restart (another replica) agrees
    for s in (store, again):
        with pytest.raises(NotFound):
            s.get_run("run_a")
        with pytest.raises(NotFound):
            s.read_rows("run", "run_a")
        with pytest.raises(NotFound):
            s.get_diagnosis("diag_run_a")
        with pytest.raises(NotFound):
            s.read_suggestion_set("set_a")
        assert [r.id for r in s.list_runs(None, 10, 0)] == ["run_b"]
        assert s.suggested_ids("run_a", "pool_a") == set() and s.read_labels("run", "run_a") == []
        # The pool it was suggested from keeps its rows, labels and index.
        assert s.read_rows("pool", "pool_a").num_rows == 10 and s.labeled_ids("pool", "pool_a") == {"pool_a-0-0"}
        assert s.load_index("pool_a") == b"index" * 10
        assert s.read_rows("run", "run_b").num_rows == 10 and s.get_diagnosis("diag_run_b").run_id == "run_b"
        assert s.suggested_ids("run_b", "pool_b") == {"pool_b-1-0"}
    with pytest.raises(NotFound):
        store.delete("run", "run_a", force=True)
    # The same id can be created again, empty.
    _run(store, "run_a")
    store.ingest_batch("run", "run_a", "b0", _batch(["n1"]), {})
    assert store.read_rows("run", "run_a").column("sample_id").to_pylist() == ["n1"]


def test_deleting_a_pool_removes_its_rows_index_labels_and_suggestion_sets(open_again):
    store = open_again()
    _fill(store, "run_a", "pool_a", "set_a")
    size = store.stored_bytes("pool", ["pool_a"])["pool_a"]
    out = store.delete("pool", "pool_a", force=True)
    assert size == out.bytes > 0
    assert (out.rows, out.diagnoses, out.suggestion_sets, out.labels) == (10, 0, 1, 1)
    assert not [p for p in _stored_files(store) if p.startswith(("pools/", "suggestions/"))]
    for s in (store, open_again()):
        with pytest.raises(NotFound):
            s.get_pool("pool_a")
        assert s.load_index("pool_a") is None
        assert s.suggested_ids("run_a", "pool_a") == set() and s.labeled_ids("pool", "pool_a") == set()
        assert s.read_rows("run", "run_a").num_rows == 10 and s.labeled_ids("run", "run_a") == {"run_a-0-0"}
        assert s.latest_diagnosis("run_a").id == "diag_run_a"


def test_jobs_are_listed_newest_first_by_state_kind_run_pool_and_project(open_again):
    """list_jobs: newest first, paged; states, kind, run and pool narrow the list; a project list keeps
    its runs' and pools' jobs (not a deleted pool's, nor an index build from before jobs named their
    pool: the catalog of an older version gains the column, empty)."""
    store = open_again()
    _run(store, "run_a", project="p")
    _run(store, "run_b", project="q")
    _pool(store, "pool_a", project="p")
    _pool(store, "pool_gone", project="q")
    t0 = time.time()
    made = []
    for i, (kind, run_id, pool_id, state) in enumerate((
            ("diagnose", "run_a", "", "SUCCEEDED"), ("index_build", "", "pool_a", "SUCCEEDED"),
            ("diagnose", "run_b", "", "FAILED"), ("diagnose", "run_a", "", "RUNNING"),
            ("index_build", "", "pool_gone", "PENDING"), ("diagnose", "run_b", "", "PENDING"))):
        job = JobRecord(id=f"job_{i}", kind=kind, run_id=run_id, state=state, fraction_done=0.0, stage="s",
                        result_id="", error="", created_at=t0 + i, updated_at=t0 + i, pool_id=pool_id,
                        started_at=0.0 if state == "PENDING" else t0 + i + 0.5)
        store.save_job(job)
        made.append(job)
    store.delete("pool", "pool_gone")
    ids = lambda jobs: [j.id for j in jobs]  # noqa: E731
    everything = store.list_jobs(None, [], "", "", "", 100, 0)
    assert ids(everything) == [f"job_{i}" for i in range(5, -1, -1)] and everything[-1] == made[0]
    assert store.get_job("job_1") == made[1] and store.get_job("job_1").pool_id == "pool_a"
    assert ids(store.list_jobs(None, [], "", "", "", 2, 2)) == ["job_3", "job_2"]
    assert ids(store.list_jobs(None, ["PENDING", "RUNNING"], "", "", "", 100, 0)) == ["job_5", "job_4", "job_3"]
    assert ids(store.list_jobs(None, [], "index_build", "", "", 100, 0)) == ["job_4", "job_1"]
    assert ids(store.list_jobs(None, [], "", "run_a", "", 100, 0)) == ["job_3", "job_0"]
    assert ids(store.list_jobs(None, [], "", "", "pool_a", 100, 0)) == ["job_1"]
    assert ids(store.list_jobs(["p"], [], "", "", "", 100, 0)) == ["job_3", "job_1", "job_0"]
    assert ids(store.list_jobs(["q"], [], "", "", "", 100, 0)) == ["job_5", "job_2"]     # pool_gone's is not
    assert ids(store.list_jobs(["p", "q"], ["PENDING"], "", "", "", 100, 0)) == ["job_5"]
    assert store.list_jobs(["p"], [], "", "run_b", "", 100, 0) == []
    assert store.list_jobs(["nobody"], [], "", "", "", 100, 0) == []
    store.close()
    _alter_catalog(open_again, [f"DROP INDEX jobs_{i}" for i in ("created", "run", "pool", "state")]
                   + ["ALTER TABLE jobs DROP COLUMN pool_id",                  # from before jobs named their pool
                      "ALTER TABLE jobs DROP COLUMN started_at"])              # ... and kept their start
    store = open_again()
    assert {"jobs_created", "jobs_run", "jobs_pool", "jobs_state"} <= _index_names(open_again, "jobs")
    assert store.get_job("job_1").pool_id == "" and ids(store.list_jobs(["p"], [], "", "", "", 100, 0)) == [
        "job_3", "job_0"]
    assert store.get_job("job_1").started_at == 0.0
    store.save_job(dataclasses.replace(made[1], pool_id="pool_a"))
    assert store.get_job("job_1") == made[1]


def test_finished_jobs_that_ended_before_a_cutoff_are_pruned_and_nothing_else(store):
    """prune_jobs (job_retention_days): the jobs in an end state last updated before the cutoff go,
    whatever their kind; one updated at the cutoff or after stays, and a pending or running job stays
    however old. What a pruned job made (its diagnosis) stays."""
    _run(store)
    _pool(store)
    cutoff = 2_000_000.0
    states = ("SUCCEEDED", "FAILED", "CANCELLED", "PENDING", "RUNNING")
    for when, tag in ((cutoff - 86_400.0, "old"), (cutoff, "edge"), (cutoff + 1.0, "new")):
        for state in states:
            kind, run_id, pool_id = ("index_build", "", "pool_a") if state == "FAILED" else ("diagnose", "run_a", "")
            store.save_job(JobRecord(id=f"{tag}_{state}", kind=kind, run_id=run_id, state=state, fraction_done=0.0,
                                     stage="s", result_id="", error="", created_at=when - 60.0, updated_at=when,
                                     pool_id=pool_id))
    store.save_diagnosis(DiagnosisRecord(id="diag_old", run_id="run_a", created_at=cutoff - 86_400.0,
                                         job_id="old_SUCCEEDED", payload=b"\x01"),
                         pa.table({"region": pa.array([0], pa.int32()), "failed": [True]}))
    assert store.prune_jobs(cutoff) == 3
    kept = {j.id for j in store.list_jobs(None, [], "", "", "", 100, 0)}
    assert kept == {f"{tag}_{s}" for tag in ("edge", "new") for s in states} | {"old_PENDING", "old_RUNNING"}
    for state in ("SUCCEEDED", "FAILED", "CANCELLED"):
        with pytest.raises(NotFound):
            store.get_job(f"old_{state}")
    assert store.get_diagnosis("diag_old").job_id == "old_SUCCEEDED"
    assert store.prune_jobs(cutoff) == 0


def test_stale_runs_are_those_unused_since_the_cutoff_but_never_the_newest_of_a_model(open_again):
    """last_used: the latest of a run's creation, last ingest, newest diagnosis and newest suggestion
    set. stale("run") (run_retention_days): runs created before the cutoff with no rows ingested, no
    diagnosis and no suggestion set made since, oldest first; the newest run of each project and model
    name is never one of them (runs without a model name count as one model), however old. A catalog
    from before ingests were dated counts none."""
    store = open_again()
    cutoff = 5_000_000.0
    day = 86_400.0

    def run(run_id: str, created: float, model: str = "m", project: str = "p") -> None:
        store.create_run(RunRecord(id=run_id, name=run_id, project=project, model_name=model, model_version="1",
                                   dataset_name="d", class_names=["x", "y"], embedding_dim=4, created_at=created))

    run("m_old", cutoff - 40 * day)
    run("m_diagnosed_since", cutoff - 39 * day)
    run("m_suggested_since", cutoff - 38 * day)
    run("m_ingested_since", cutoff - 37 * day)
    run("m_at_cutoff", cutoff)
    run("m_newest", cutoff + day)
    run("q_old", cutoff - 30 * day, project="q")          # the same model name in another project:
    run("q_newest", cutoff - 20 * day, project="q")       # its own newest, kept though unused
    run("lone_model", cutoff - 50 * day, model="lone")
    run("unnamed_old", cutoff - 50 * day, model="")
    run("unnamed_newer", cutoff - 45 * day, model="")
    run("tie_a", cutoff - 10 * day, model="tied")        # same time: the larger id is the newest
    run("tie_b", cutoff - 10 * day, model="tied")
    store.save_diagnosis(DiagnosisRecord(id="d_old", run_id="m_old", created_at=cutoff - 35 * day, job_id="",
                                         payload=b"\x01"), pa.table({"region": pa.array([0], pa.int32())}))
    store.save_diagnosis(DiagnosisRecord(id="d_since", run_id="m_diagnosed_since", created_at=cutoff, job_id="",
                                         payload=b"\x01"), pa.table({"region": pa.array([0], pa.int32())}))
    _pool(store)
    store.save_suggestion_set(SuggestionSetRecord(
        id="set_since", run_id="m_suggested_since", pool_id="pool_a", diagnosis_id="", strategy="margin", budget=1,
        num_candidates=1, created_at=cutoff + 1.0, name=""), pa.table({"sample_id": ["s0"]}))
    store.ingest_batch("run", "m_ingested_since", "b1", _batch(["r0"]), {})      # now, long after the cutoff
    assert [r.id for r in store.stale("run", cutoff)] == ["unnamed_old", "m_old", "q_old", "tie_a"]
    assert [r.id for r in store.stale("run", cutoff + 2 * day)] == [
        "unnamed_old", "m_old", "m_diagnosed_since", "m_suggested_since", "q_old", "tie_a", "m_at_cutoff"]
    assert store.stale("run", cutoff - 60 * day) == []
    assert store.stale("run", cutoff)[1] == store.get_run("m_old")
    used = store.last_used(["m_old", "m_diagnosed_since", "m_suggested_since", "m_ingested_since", "lone_model",
                            "no_such_run"], "run")
    assert {k: v for k, v in used.items() if k != "m_ingested_since"} == {
        "m_old": cutoff - 35 * day, "m_diagnosed_since": cutoff, "m_suggested_since": cutoff + 1.0,
        "lone_model": cutoff - 50 * day}
    assert used["m_ingested_since"] > time.time() - 600
    store.close()
    _alter_catalog(open_again, [f"ALTER TABLE {t} DROP COLUMN ingested_at" for t in ("runs", "pools")])
    store = open_again()
    assert [r.id for r in store.stale("run", cutoff + 2 * day)] == [
        "unnamed_old", "m_old", "m_diagnosed_since", "m_suggested_since", "m_ingested_since", "q_old", "tie_a",
        "m_at_cutoff"]
    store.ingest_batch("run", "m_ingested_since", "b2", _batch(["r1"]), {})
    assert "m_ingested_since" not in {r.id for r in store.stale("run", cutoff + 2 * day)}
    store.close()


def test_stale_pools_are_those_unused_since_the_cutoff_but_never_the_newest_of_a_project(open_again):
    """last_used of a pool: the latest of its creation, last ingest and newest suggestion set made from
    it (a diagnosis of a run is not a use of any pool). stale("pool") (pool_retention_days): pools
    created before the cutoff with no rows ingested and no suggestion set made since, oldest first;
    the newest pool of each project is never one of them, however old."""
    store = open_again()
    cutoff = 5_000_000.0
    day = 86_400.0

    def pool(pool_id: str, created: float, project: str = "p") -> None:
        store.create_pool(PoolRecord(id=pool_id, name=pool_id, project=project, embedding_dim=4, num_classes=0,
                                     created_at=created))

    pool("old", cutoff - 40 * day)
    pool("suggested_since", cutoff - 39 * day)
    pool("ingested_since", cutoff - 38 * day)
    pool("suggested_before", cutoff - 37 * day)
    pool("tie_a", cutoff - 36 * day)                     # same time: listed by id
    pool("tie_b", cutoff - 36 * day)
    pool("at_cutoff", cutoff)
    pool("newest", cutoff + day)
    pool("q_old", cutoff - 50 * day, project="q")        # the only pool of its project: kept
    store.create_run(RunRecord(id="run_a", name="a", project="p", model_name="m", model_version="1",
                               dataset_name="d", class_names=["x", "y"], embedding_dim=4, created_at=cutoff - 40 * day))
    for set_id, pool_id, when in (("set_since", "suggested_since", cutoff + 1.0),
                                  ("set_before", "suggested_before", cutoff - 30 * day)):
        store.save_suggestion_set(SuggestionSetRecord(
            id=set_id, run_id="run_a", pool_id=pool_id, diagnosis_id="", strategy="margin", budget=1,
            num_candidates=1, created_at=when, name=""), pa.table({"sample_id": ["s0"]}))
    store.save_diagnosis(DiagnosisRecord(id="d_since", run_id="run_a", created_at=cutoff + day, job_id="",
                                         payload=b"\x01"), pa.table({"region": pa.array([0], pa.int32())}))
    store.ingest_batch("pool", "ingested_since", "b1", _batch(["r0"]), {})      # now, long after the cutoff
    assert [p.id for p in store.stale("pool", cutoff)] == ["old", "suggested_before", "tie_a", "tie_b"]
    assert [p.id for p in store.stale("pool", cutoff + 2 * day)] == [
        "old", "suggested_since", "suggested_before", "tie_a", "tie_b", "at_cutoff"]
    assert store.stale("pool", cutoff - 60 * day) == []
    assert store.stale("pool", cutoff)[0] == store.get_pool("old")
    used = store.last_used(["old", "suggested_since", "suggested_before", "ingested_since", "no_such_pool"], "pool")
    assert {k: v for k, v in used.items() if k != "ingested_since"} == {
        "old": cutoff - 40 * day, "suggested_since": cutoff + 1.0, "suggested_before": cutoff - 30 * day}
    assert used["ingested_since"] > time.time() - 600
    assert store.last_used(["run_a"], "pool") == {} and store.last_used(["old"], "run") == {}
    store.close()


def test_the_job_backlog_counts_pending_and_running_jobs_and_dates_the_oldest_pending(store):
    """job_backlog (the blindspots_jobs gauges): jobs not finished yet, and when the one waiting longest
    was created; finished jobs do not count, however old."""
    _run(store)
    assert store.job_backlog() == JobBacklog(pending=0, running=0, oldest_pending_at=None)
    for i, (state, created) in enumerate((("PENDING", 500.0), ("PENDING", 200.0), ("RUNNING", 100.0),
                                          ("SUCCEEDED", 5.0), ("FAILED", 1.0), ("CANCELLED", 2.0))):
        store.save_job(JobRecord(id=f"job_{i}", kind="diagnose", run_id="run_a", state=state, fraction_done=0.0,
                                 stage="s", result_id="", error="", created_at=created, updated_at=created))
    assert store.job_backlog() == JobBacklog(pending=2, running=1, oldest_pending_at=200.0)


def _index_names(open_again, table: str) -> set[str]:
    """The names of the indexes the catalog has on ``table``."""
    if open_again.backend == "embedded":
        import sqlite3
        from blindspots_server.storage.maintenance import CATALOG
        db = sqlite3.connect(f"{open_again.location}/{CATALOG}")
        try:
            return {row[1] for row in db.execute(f"PRAGMA index_list({table})")}
        finally:
            db.close()
    import psycopg
    with psycopg.connect(open_again.location) as db:
        return {row[0] for row in db.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))}


def _alter_catalog(open_again, sql: list[str]) -> None:
    """Run ``sql`` on the closed store's catalog, as an older version of it would have left it."""
    if open_again.backend == "embedded":
        import sqlite3
        from blindspots_server.storage.maintenance import CATALOG
        db = sqlite3.connect(f"{open_again.location}/{CATALOG}")
        for q in sql:
            db.execute(q)
        db.commit()
        db.close()
    else:
        import psycopg
        with psycopg.connect(open_again.location, autocommit=True) as db:
            for q in sql:
                db.execute(q)


def test_a_run_with_an_unfinished_job_is_not_deleted(store):
    _fill(store, "run_a", "pool_a", "set_a")
    t0 = time.time()
    job = JobRecord(id="job_r", kind="diagnose", run_id="run_a", state="RUNNING", fraction_done=0.5, stage="fit",
                    result_id="", error="", created_at=t0, updated_at=t0)
    store.save_job(job)
    with pytest.raises(Conflict, match="job_r"):
        store.delete("run", "run_a", force=True)
    assert store.read_rows("run", "run_a").num_rows == 10       # nothing of it was removed
    job.state = "CANCELLED"
    store.save_job(job)
    store.delete("run", "run_a", force=True)
    with pytest.raises(NotFound):
        store.get_job("job_r")                                   # its finished jobs go with it


def test_writes_for_a_deleted_run_or_pool_fail_and_leave_no_file(open_again):
    store = open_again()
    _fill(store, "run_a", "pool_a", "set_a")
    store.delete("run", "run_a", force=True)
    store.delete("pool", "pool_a", force=True)
    t0 = time.time()
    with pytest.raises(NotFound):
        store.save_diagnosis(DiagnosisRecord(id="diag_late", run_id="run_a", created_at=t0, job_id="", payload=b""),
                             pa.table({"region": pa.array([0], pa.int32())}))
    with pytest.raises(NotFound):
        store.save_suggestion_set(SuggestionSetRecord(id="set_late", run_id="run_a", pool_id="pool_a",
                                                      diagnosis_id="", strategy="margin", budget=1,
                                                      num_candidates=1, created_at=t0, name=""),
                                  pa.table({"sample_id": ["x"]}))
    with pytest.raises(NotFound):
        store.save_index("pool_a", b"late", "flat", 1, "Flat")
    with pytest.raises(NotFound):
        store.save_labels("pool", "pool_a", ["pool_a-0-0"], ["x"], "tool", 2.0)
    with pytest.raises(NotFound):
        store.ingest_batch("run", "run_a", "late", _batch(["z"]), {})
    assert _stored_files(store) == []
    assert open_again().list_runs(None, 10, 0) == [] and open_again().list_pools(None, 10, 0) == []


_DIES_AFTER_COMMIT = """
import os, sys
from blindspots_server.storage import open_store
store = open_store(sys.argv[1], files=sys.argv[2]) if sys.argv[2] else open_store(sys.argv[1])
type(store)._finish_deletions = lambda self: os._exit(9)      # the process dies right after the commit
store.delete("run", "run_a", force=True)
"""


def test_a_deletion_cut_short_after_its_commit_is_finished_when_the_store_opens(open_again):
    """The files of a committed deletion are removed by the next open, not kept as debris or
    quarantined: the catalog recorded them (``deleting``) in the deletion's transaction."""
    if open_again.backend == "postgres+memory":
        pytest.skip("a memory:// file root lives in one process")
    store = open_again()
    _fill(store, "run_a", "pool_a", "set_a")
    files = _stored_files(store)
    store.close()
    died = subprocess.run([sys.executable, "-c", _DIES_AFTER_COMMIT, open_again.location, open_again.files or ""],
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    assert _stored_files(store) == files                          # still there
    again = open_again()
    left = _stored_files(again)
    assert not [p for p in left if p.startswith(("runs/", "diagnoses/", "suggestions/"))]
    assert sorted(left) == sorted(p for p in files if p.startswith("pools/"))
    assert not getattr(again, "quarantined", [])


def test_postgres_sessions_never_prepare_the_catalogs_queries(open_again):
    """psycopg prepares a query on the server after five runs, and PostgreSQL soon switches a
    prepared query to a generic plan. The sample-id look-up of an ingest (`sample_id = ANY(...)`)
    was first planned on an empty table, and its generic plan read every stored id for each
    batch: 200k rows took 395 s against 2.3 s embedded (bench/store_ingest.py). The catalog's
    sessions plan each query for its arguments."""
    if open_again.backend == "embedded":
        pytest.skip("PostgreSQL sessions only")
    store = open_again()
    _run(store)
    for b in range(8):                                    # past psycopg's threshold of five
        store.ingest_batch("run", "run_a", f"b{b}", _batch([f"{b}-{i}" for i in range(20)]), {})
    with store._pool.connection() as conn:
        assert conn.prepare_threshold is None
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
