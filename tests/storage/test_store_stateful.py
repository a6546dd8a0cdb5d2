"""The `Store` contract as a state machine: random sequences of writes, restarts and reads on
every backend, checked after each step against a plain-Python model of what the contract says.

The example-based tests in test_store_contract.py pin one case each; this one lets Hypothesis
interleave them: batches re-sent under old and new ids, rows re-sent inside new batches with
the same or other content, metadata columns that come and go or change type, labels imported
again, suggestion sets and index blobs, the run or pool deleted and created again under its id,
and the store closed and opened again between any two steps. Backends as in test_store_contract.py (PostgreSQL: a fresh schema per example).
"""
from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import pgtest
from blindspots_server.storage import (Conflict, DuplicateSampleIds, PoolRecord, RunRecord, Store,
                                       SuggestionSetRecord, open_store)
from blindspots_server.storage.file_root import open_location
from blindspots_server.storage.files import read_parquet
from blindspots_server.storage.rows import build_table, to_row_data

DIM = 3
IDS = [f"s{i}" for i in range(8)]
# Each column has the type most batches give it and another that conflicts with it.
COLUMNS = {"region": ("string", "number"), "price": ("number", "string"), "seen": ("timestamp", "number")}
EPOCH = dt.datetime(2026, 1, 1)


def _value(sample: int, variant: int, column: str, kind: str):
    """A row's metadata value: fixed by its id, content variant, column and type."""
    if kind == "string":
        return f"{column}-{sample}-{variant}"
    if kind == "number":
        return float(100 * sample + 10 * variant + len(column))
    return EPOCH + dt.timedelta(hours=sample, minutes=variant)


def _arrow(kind: str, values: list) -> pa.Array:
    return pa.array(values, {"string": pa.string(), "number": pa.float64(), "timestamp": pa.timestamp("us")}[kind])


class _Target:
    """The model of one run or pool: what the contract says the store holds."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, tuple]] = []      # (sample, variant, ((column, type), ...)) in order
        self.content: dict[str, tuple] = {}                 # sample id -> (variant, columns)
        self.schema: dict[str, str] = {}
        self.batch_ids: set[str] = set()
        self.labels: dict[str, tuple[str, str, float]] = {}  # sample id -> (label, source, labeled_at)


def machine(location: Callable[[], Callable[[], Store]]) -> type:
    """The machine class; ``location()`` makes a fresh location per example and returns its opener."""
    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.open_again = location()
            self.store = self.open_again()
            suffix = uuid.uuid4().hex[:8]
            self.run_id, self.pool_id = f"run_{suffix}", f"pool_{suffix}"
            now = time.time()
            self.store.create_run(RunRecord(id=self.run_id, name="r", project="p", model_name="m", model_version="1",
                                            dataset_name="d", class_names=["x", "y"], embedding_dim=DIM,
                                            created_at=now))
            self.store.create_pool(PoolRecord(id=self.pool_id, name="q", project="p", embedding_dim=DIM,
                                              num_classes=0, created_at=now))
            self.model = {"run": _Target(), "pool": _Target()}
            self.suggested: set[str] = set()
            self.sets = 0
            self.index: Optional[tuple[bytes, str, int]] = None
            self.clock = 1000.0

        def _id(self, target: str) -> str:
            return self.run_id if target == "run" else self.pool_id

        # ------------------------------------------------------------ writes
        @rule(which=st.sampled_from(["run", "pool"]), batch_id=st.sampled_from(["b0", "b1", "b2", "b3", "b4"]),
              samples=st.lists(st.integers(0, len(IDS) - 1), min_size=1, max_size=5, unique=True),
              variants=st.lists(st.integers(0, 1), min_size=5, max_size=5),
              columns=st.lists(st.sampled_from(sorted(COLUMNS)), max_size=3, unique=True),
              other_type=st.sampled_from([None, *sorted(COLUMNS)]))
        def ingest(self, which, batch_id, samples, variants, columns, other_type):
            target = which      # "target" is a keyword of rule()
            kinds = {c: COLUMNS[c][1] if c == other_type else COLUMNS[c][0] for c in columns}
            cols = tuple(sorted(kinds.items()))
            rows = [(s, v, cols) for s, v in zip(samples, variants)]
            n = len(rows)
            emb = np.array([[s, v, -1.0] for s, v, _ in rows], np.float32)
            probs = np.array([[0.25 + 0.5 * v, 0.75 - 0.5 * v] for _, v, _ in rows], np.float32)
            labels = np.array([(s + v) % 2 for s, v, _ in rows]) if target == "run" else None
            meta = {c: (k, _arrow(k, [_value(s, v, c, k) for s, v, _ in rows])) for c, k in kinds.items()}
            table = build_table([IDS[s] for s, _, _ in rows], emb, labels, probs if target == "run" else None,
                                None, meta)

            m = self.model[target]
            expect_error = None
            if batch_id in m.batch_ids:
                expect = (False, 0)
            elif any(m.schema.get(c, k) != k for c, k in kinds.items()):
                expect_error = Conflict
            elif any(IDS[s] in m.content and m.content[IDS[s]] != (v, cols) for s, v, _ in rows):
                expect_error = DuplicateSampleIds
            else:
                new = [r for r in rows if IDS[r[0]] not in m.content]
                expect = (bool(new), n - len(new))
            try:
                out = self.store.ingest_batch(target, self._id(target), batch_id, table, kinds)
            except (Conflict, DuplicateSampleIds) as err:
                assert expect_error is not None and isinstance(err, expect_error), (err, expect_error)
                if isinstance(err, DuplicateSampleIds):
                    first = next(IDS[s] for s, v, _ in rows
                                 if IDS[s] in m.content and m.content[IDS[s]] != (v, cols))
                    assert err.sample_id == first and "sample_ids" in str(err)
                else:
                    assert any(c in str(err) for c in kinds)
                return
            assert expect_error is None, f"expected {expect_error.__name__}, got {out}"
            if batch_id not in m.batch_ids:
                assert (out.stored, out.rows_already_stored) == expect, (out, expect)
            else:
                assert not out.stored
            assert out.rows == n
            if out.stored:
                m.batch_ids.add(batch_id)
                m.schema.update(kinds)
                for s, v, c in rows:
                    if IDS[s] not in m.content:
                        m.content[IDS[s]] = (v, c)
                        m.rows.append((s, v, c))
            assert out.total_rows == len(m.rows)

        @rule(which=st.sampled_from(["run", "pool"]),
              given=st.lists(st.tuples(st.integers(0, len(IDS) - 1), st.sampled_from(["x", "y"])),
                             min_size=1, max_size=6),
              source=st.sampled_from(["tool:1", "tool:2"]), same_time=st.booleans())
        def save_labels(self, which, given, source, same_time):
            target = which      # "target" is a keyword of rule()
            if not same_time:
                self.clock += 1.0
            m = self.model[target]
            latest = {IDS[s]: label for s, label in given}
            replaced = sum(sid in m.labels for sid in latest)
            out = self.store.save_labels(target, self._id(target), [IDS[s] for s, _ in given],
                                         [label for _, label in given], source, self.clock)
            for sid, label in latest.items():
                m.labels[sid] = (label, source, self.clock)
            assert (out.stored, out.replaced, out.total) == (len(latest), replaced, len(m.labels))

        @rule(picks=st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True))
        def save_suggestion_set(self, picks):
            set_id = f"set_{uuid.uuid4().hex[:8]}"
            record = SuggestionSetRecord(id=set_id, run_id=self.run_id, pool_id=self.pool_id, diagnosis_id="",
                                         strategy="margin", budget=len(picks), num_candidates=len(picks),
                                         created_at=self.clock, name="")
            self.store.save_suggestion_set(record, pa.table({"sample_id": picks,
                                                             "score": [float(i) for i in range(len(picks))]}))
            self.suggested.update(picks)
            self.sets += 1
            got, table = self.store.read_suggestion_set(set_id)
            assert got == record and table.column("sample_id").to_pylist() == picks

        @rule(size=st.integers(0, 300), kind=st.sampled_from(["flat", "ivf"]))
        def save_index(self, size, kind):
            blob = bytes((size + i) % 256 for i in range(size))
            self.store.save_index(self.pool_id, blob, kind, size, kind.upper())
            self.index = (blob, kind, size)

        @rule(which=st.sampled_from(["run", "pool"]))
        def delete_and_create_again(self, which):
            """Delete the run or pool, then create one under the same id: it starts empty (no rows,
            labels, sets or index of the old one, from any cache)."""
            target, m = which, self.model[which]
            if m.labels:
                with pytest.raises(Conflict, match="label"):
                    self.store.delete(target, self._id(target))
            out = self.store.delete(target, self._id(target), force=True)
            assert (out.rows, out.labels, out.suggestion_sets, out.diagnoses) == (len(m.rows), len(m.labels),
                                                                                 self.sets, 0)
            assert out.files == len({b for b in m.batch_ids}) + self.sets + (
                1 if target == "pool" and self.index is not None else 0)
            now = time.time()
            if target == "run":
                self.store.create_run(RunRecord(id=self.run_id, name="r", project="p", model_name="m",
                                                model_version="1", dataset_name="d", class_names=["x", "y"],
                                                embedding_dim=DIM, created_at=now))
            else:
                self.store.create_pool(PoolRecord(id=self.pool_id, name="q", project="p", embedding_dim=DIM,
                                                  num_classes=0, created_at=now))
                self.index = None
            self.model[target] = _Target()
            self.suggested, self.sets = set(), 0

        @rule()
        def reopen(self):
            """A restart: the store closed and opened again on the same location (a replica is the same)."""
            self.store.close()
            self.store = self.open_again()

        # ------------------------------------------------------------ reads
        @rule(which=st.sampled_from(["run", "pool"]),
              asked=st.lists(st.sampled_from(IDS + ["zz", "s10"]), max_size=5))
        def unknown_sample_ids(self, which, asked):
            target = which      # "target" is a keyword of rule()
            known = self.model[target].content
            assert self.store.unknown_sample_ids(target, self._id(target), asked) == [s for s in asked
                                                                                      if s not in known]

        @invariant()
        def rows_are_the_models(self):
            for target, m in self.model.items():
                tid = self._id(target)
                record = self.store.get_run(tid) if target == "run" else self.store.get_pool(tid)
                assert record.num_rows == len(m.rows) and record.metadata_schema == m.schema
                table = self.store.read_rows(target, tid)
                if not m.rows:      # no batch yet: a table of no rows (and no columns)
                    assert table.num_rows == 0 and len(self.store.read_row_data(target, tid)) == 0
                    assert self.store.row_files(target, tid) == []
                    continue
                assert table.column("sample_id").to_pylist() == [IDS[s] for s, _, _ in m.rows]
                data = self.store.read_row_data(target, tid)
                assert data.sample_ids.tolist() == [IDS[s] for s, _, _ in m.rows]
                want = np.array([[s, v, -1.0] for s, v, _ in m.rows], np.float32).reshape(-1, DIM)
                np.testing.assert_array_equal(to_row_data(table).embeddings.reshape(-1, DIM), want)
                np.testing.assert_array_equal(data.embeddings.reshape(-1, DIM), want)
                if target == "run":
                    assert data.labels.tolist() == [(s + v) % 2 for s, v, _ in m.rows]
                for column, kind in m.schema.items():
                    got = table.column(f"m.{column}").to_pylist()
                    assert got == [_value(s, v, column, kind) if dict(c).get(column) == kind else None
                                   for s, v, c in m.rows], column
                    assert data.metadata[column].notna().sum() == sum(column in dict(c) for _, _, c in m.rows)
                files = self.store.row_files(target, tid)
                ids: list[str] = []
                for f in files:
                    with open_location(f.location, target) as source:
                        part = read_parquet(source, target)
                    assert part.num_rows == f.rows
                    ids += part.column("sample_id").to_pylist()
                assert ids == [IDS[s] for s, _, _ in m.rows]

        @invariant()
        def labels_are_the_models(self):
            for target, m in self.model.items():
                tid = self._id(target)
                got = self.store.read_labels(target, tid)
                assert {r.sample_id: (r.label, r.source, r.labeled_at) for r in got} == m.labels
                assert [r.labeled_at for r in got] == sorted(r.labeled_at for r in got), "oldest first"
                assert self.store.labeled_ids(target, tid) == set(m.labels)

        @invariant()
        def suggestions_and_index_are_the_models(self):
            assert self.store.suggested_ids(self.run_id, self.pool_id) == self.suggested
            pool = self.store.get_pool(self.pool_id)
            if self.index is None:
                assert self.store.load_index(self.pool_id) is None and pool.index_kind == ""
            else:
                blob, kind, size = self.index
                assert self.store.load_index(self.pool_id) == blob
                assert (pool.index_kind, pool.index_rows, pool.index_description) == (kind, size, kind.upper())

        def teardown(self):
            self.store.close()

    return StoreMachine


SETTINGS = settings(max_examples=25, stateful_step_count=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("backend", ["embedded", "postgres", "postgres+memory"])
def test_random_sequences_of_writes_and_restarts_keep_the_contract(backend, tmp_path_factory, request):
    if backend == "embedded":
        def location() -> Callable[[], Store]:
            root = tmp_path_factory.mktemp("stateful") / "data"
            return lambda: open_store(str(root))
    else:
        database = request.getfixturevalue("postgres_database")

        def location() -> Callable[[], Store]:
            catalog = pgtest.fresh_schema(database)
            files = (str(tmp_path_factory.mktemp("stateful") / "files") if backend == "postgres"
                     else f"memory://bs-{uuid.uuid4().hex[:8]}")
            return lambda: open_store(catalog, files=files)

    run_state_machine_as_test(machine(location), settings=SETTINGS)

