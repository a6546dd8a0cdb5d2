"""Writers racing on one run: pipeline workers (or replicas) sending overlapping batches at once.

Each worker holds its own store (PostgreSQL: its own connection pool, as a replica does; embedded:
threads of one process sharing the store, as the server's handlers do). Batches overlap: the same
rows under other batch ids, the same batch ids again, and rows some worker sends with other
content. Whatever the interleaving, the result must be one the serial contract allows: every
sample id stored once with the content of the batch that stored it, each batch all-or-nothing, the
row count equal to the rows read back, and every refusal a DuplicateSampleIds naming a real clash.
"""
from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

import pgtest
from blindspots_server.storage import (DiagnosisRecord, DuplicateSampleIds, NotFound, PoolRecord, RunRecord,
                                       SuggestionSetRecord, open_store)
from blindspots_server.storage.rows import build_table, to_row_data

WORKERS, BATCHES, IDS, DIM = 4, 30, 60, 2


def _plan(seed: int) -> list[list[tuple[str, list[int], int]]]:
    """Per worker: (batch id, sample numbers, content variant) in sending order."""
    rng = np.random.default_rng(seed)
    plan = []
    for w in range(WORKERS):
        batches = []
        for b in range(BATCHES):
            ids = sorted(rng.choice(IDS, size=int(rng.integers(1, 8)), replace=False).tolist())
            variant = 1 if (w == WORKERS - 1 and rng.random() < 0.3) else 0    # one worker sometimes clashes
            # Half the batch ids are shared between workers (a retried step), half are the worker's own.
            batch_id = f"shared-{b}" if rng.random() < 0.5 else f"w{w}-{b}"
            batches.append((batch_id, ids, variant))
        plan.append(batches)
    return plan


def _table(ids: list[int], variant: int):
    emb = np.array([[i, variant] for i in ids], np.float32)
    return build_table([f"s{i}" for i in ids], emb, np.zeros(len(ids)), np.full((len(ids), 2), 0.5, np.float32),
                       None, {})


@pytest.fixture(params=["embedded", "postgres"])
def stores(request, tmp_path):
    """One store per worker: PostgreSQL, a store (connection pool) each, as replicas hold; embedded,
    the one store of the process shared by the workers' threads, as the server's handlers share it."""
    if request.param == "embedded":
        opened = [open_store(str(tmp_path / "data"))]
        yield opened * WORKERS
    else:
        catalog = pgtest.fresh_schema(request.getfixturevalue("postgres_database"))
        opened = [open_store(catalog, files=str(tmp_path / "files")) for _ in range(WORKERS)]
        yield opened
    for store in opened:
        store.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_racing_writers_leave_a_state_the_serial_contract_allows(stores, seed):
    run_id = f"run_{uuid.uuid4().hex[:8]}"
    stores[0].create_run(RunRecord(id=run_id, name="r", project="p", model_name="m", model_version="1",
                                   dataset_name="d", class_names=["x", "y"], embedding_dim=DIM,
                                   created_at=time.time()))
    plan = _plan(seed)
    outcomes: list[list[tuple]] = [[] for _ in range(WORKERS)]
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def work(w: int) -> None:
        try:
            start.wait()
            for batch_id, ids, variant in plan[w]:
                try:
                    out = stores[w].ingest_batch("run", run_id, batch_id, _table(ids, variant), {})
                    outcomes[w].append(("ok", batch_id, ids, variant, out))
                except DuplicateSampleIds as err:
                    outcomes[w].append(("clash", batch_id, ids, variant, err))
        except BaseException as exc:          # anything else fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    rows = to_row_data(stores[0].read_rows("run", run_id))
    stored = {sid: int(e[1]) for sid, e in zip(rows.sample_ids.tolist(), rows.embeddings.tolist())}
    assert len(stored) == len(rows) == stores[0].get_run(run_id).num_rows, "every id once"
    for sid, e in zip(rows.sample_ids.tolist(), rows.embeddings.tolist()):
        assert f"s{int(e[0])}" == sid
    stored_by: dict[str, tuple] = {}
    replays = []
    for w in range(WORKERS):
        for kind, batch_id, ids, variant, what in outcomes[w]:
            names = [f"s{i}" for i in ids]
            if kind == "clash":
                # A real clash: the named id is stored with the other content.
                assert what.sample_id in names and stored[what.sample_id] != variant, (what, stored)
            elif what.stored:
                assert batch_id not in stored_by, f"batch id {batch_id} stored twice"
                stored_by[batch_id] = (names, variant)
                # Its rows are all there with its content (a row stored before with other
                # content would have been a clash), and it added at least one.
                assert all(stored[n] == variant for n in names) and what.rows_already_stored < len(names)
            elif what.rows_already_stored:
                # Every row was stored before, with this content.
                assert what.rows_already_stored == len(names) and all(stored[n] == variant for n in names)
            else:
                replays.append(batch_id)
    # A batch answered "nothing new" without rows already stored is a batch id stored before.
    assert set(replays) <= set(stored_by), set(replays) - set(stored_by)
    # Every stored id came from a batch that reports having stored something.
    assert set(stored) <= {n for names, _ in stored_by.values() for n in names}
    # Another worker's store (another replica's, on PostgreSQL) reads the same rows, in order.
    again = to_row_data(stores[-1].read_rows("run", run_id))
    assert again.sample_ids.tolist() == rows.sample_ids.tolist()


def test_racing_label_imports_count_each_new_label_once(stores):
    """Labeling-tool webhooks and imports arriving together: each import's `replaced` is its own,
    so over all imports the labels counted as new add up to the labels stored."""
    rng = np.random.default_rng(7)
    imports = [[sorted(rng.choice(IDS, size=int(rng.integers(1, 20)), replace=False).tolist()) for _ in range(25)]
               for _ in range(WORKERS)]
    counted: list[int] = []
    start = threading.Barrier(WORKERS)
    stores[0].create_pool(PoolRecord(id="pool_a", name="p", project="p", embedding_dim=DIM, num_classes=0,
                                     created_at=time.time()))

    def work(w: int) -> None:
        start.wait()
        for k, ids in enumerate(imports[w]):
            out = stores[w].save_labels("pool", "pool_a", [f"s{i}" for i in ids], ["x"] * len(ids), f"w{w}", float(k))
            counted.append(out.stored - out.replaced)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    labeled = stores[0].labeled_ids("pool", "pool_a")
    assert labeled == {f"s{i}" for batches in imports for ids in batches for i in ids}
    assert len(counted) == WORKERS * 25 and sum(counted) == len(labeled)


def test_named_locks_held_by_more_holders_than_pooled_connections_leave_their_queries_room(
        postgres_database, tmp_path):
    """Suggest rounds of different runs hold their locks while they query the catalog: more such
    rounds than the pool has connections must still finish (each lock has a connection of its own)."""
    from blindspots_server.storage.postgres import PostgresStore

    store = PostgresStore(pgtest.fresh_schema(postgres_database), str(tmp_path / "files"), max_connections=2)
    holders, done = 4, []
    inside = threading.Barrier(holders, timeout=60)

    def hold(i: int) -> None:
        with store.exclusive(f"suggest/run_{i}/pool"):
            inside.wait()                       # every lock held at once
            done.append(store.suggested_ids(f"run_{i}", "pool"))

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(holders)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert done == [set()] * holders
    finally:
        store.close()


@pytest.mark.parametrize("round_", range(3))
def test_writes_racing_a_delete_land_before_it_or_find_it_gone(stores, tmp_path, round_):
    """Workers keep writing batches, labels, diagnoses and suggestion sets for a run and a pool
    while another worker deletes both. Each write either landed before the delete (and went with
    it) or raised NotFound; afterwards the store holds nothing of either, not a file or a row.
    The delete starts after 1, 10 or 30 writes have landed (by count, not by a sleep, so the race
    is the same on a faster machine) and the writers go on until it has ended, then write once more."""
    tag = uuid.uuid4().hex[:6]
    run_id, pool_id = f"run_{tag}", f"pool_{tag}"
    stores[0].create_run(RunRecord(id=run_id, name="r", project="p", model_name="m", model_version="1",
                                   dataset_name="d", class_names=["a", "b"], embedding_dim=DIM,
                                   created_at=time.time()))
    stores[0].create_pool(PoolRecord(id=pool_id, name="p", project="p", embedding_dim=DIM, num_classes=0,
                                     created_at=time.time()))
    stores[0].ingest_batch("pool", pool_id, "first", _table([0], 0), {})
    refused: list[str] = []
    unexpected: list[BaseException] = []
    start = threading.Barrier(WORKERS)
    landed, deleted = threading.Condition(), threading.Event()
    count = [0]

    def writer(w: int) -> None:
        store = stores[w]
        start.wait()
        for i in range(1000):                    # bounded should the delete never end
            after_delete = deleted.is_set()
            step = (w + i) % 4
            try:
                if step == 0:
                    store.ingest_batch("run", run_id, f"w{w}-{i}", _table([1000 * w + i], 0), {})
                elif step == 1:
                    store.save_labels("pool", pool_id, ["s0"], [f"l{w}"], "tool", float(i))
                elif step == 2:
                    store.save_diagnosis(DiagnosisRecord(id=f"diag_{tag}_{w}_{i}", run_id=run_id,
                                                         created_at=time.time(), job_id="", payload=b""),
                                         pa.table({"region": [0]}))
                else:
                    store.save_suggestion_set(SuggestionSetRecord(
                        id=f"set_{tag}_{w}_{i}", run_id=run_id, pool_id=pool_id, diagnosis_id="",
                        strategy="margin", budget=1, num_candidates=1, created_at=time.time(), name=""),
                        pa.table({"sample_id": ["s0"]}))
                with landed:
                    count[0] += 1
                    landed.notify_all()
            except NotFound:
                refused.append(f"{w}/{i}")
            except BaseException as exc:      # anything else is a defect
                unexpected.append(exc)
            if after_delete:
                break

    def deleter() -> None:
        start.wait()
        try:
            with landed:                         # some writes land first, the rest race the delete
                landed.wait_for(lambda: count[0] >= (1, 10, 30)[round_], timeout=60)
            for target, target_id in (("run", run_id), ("pool", pool_id)):
                try:
                    stores[-1].delete(target, target_id, force=True)
                except BaseException as exc:
                    unexpected.append(exc)
        finally:
            deleted.set()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WORKERS - 1)]
    threads.append(threading.Thread(target=deleter))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not unexpected, unexpected
    assert refused, "no write came after the delete: the race was not exercised"
    store = stores[0]
    assert not [r for r in store.list_runs(None, 100, 0) if r.id == run_id]
    assert not [p for p in store.list_pools(None, 100, 0) if p.id == pool_id]
    assert store.list_diagnoses(run_id) == [] and store.suggested_ids(run_id, pool_id) == set()
    assert store.read_labels("pool", pool_id) == []
    root = tmp_path / ("data" if hasattr(store, "root") else "files")
    left = [p for p in root.rglob("*") if p.is_file() and tag in str(p)]
    assert left == []
