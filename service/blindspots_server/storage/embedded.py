"""The embedded store: one local data directory.

    <data_dir>/catalog.sqlite            runs, pools, batches, diagnoses, jobs, suggestion sets, labels, file hashes
    <data_dir>/runs/<run_id>/*.parquet   one file per acknowledged batch
    <data_dir>/pools/<pool_id>/*.parquet
    <data_dir>/pools/<pool_id>/index.faiss
    <data_dir>/diagnoses/<id>.parquet    region of every test row
    <data_dir>/suggestions/<id>.parquet  the candidates of one suggestion set
    <data_dir>/quarantine/<time>/...     files found without a catalog row (never deleted)
    <data_dir>/owner.lock                held by the one process that has the store open (:mod:`.owner`)

Deleting a run or pool (``delete``) removes its catalog rows and records its files in
``deleting`` in one transaction, then removes the files; ``open`` finishes what a stopped
process left in ``deleting``, so its files are neither debris nor kept.

Durability: a batch's Parquet file is written to tmp/, fsynced, renamed into
place and the directory fsynced (:mod:`.files`); then its catalog row is
committed (SQLite WAL, synchronous=FULL, so the commit is on disk) together
with the batch's sample ids and the file's SHA-256, which is also where a
sample id stored by an earlier batch is caught (the whole transaction rolls
back). Only then is the batch acknowledged. A crash between rename and commit
leaves a file no catalog row names: ``open`` moves it to quarantine/ and says
so — it never deletes a file it cannot account for, since a lost or wrong
catalog would make every file look like debris (:mod:`.maintenance` refuses
to open such a directory at all). tmp/ holds only writes never acknowledged
and is cleared.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

import pyarrow as pa

from . import maintenance
from .base import (DeleteOutcome, DiagnosisRecord, DuplicateSampleIds, IngestOutcome, JobRecord, NotFound, PoolRecord,
                   RunRecord, Store, StoreUnusable, SuggestionSetRecord, merged_schema, rows_not_stored)
from .files import fsync_dir, read_blob, read_parquet, write_blob, write_parquet
from .embedded_labels import LABELS_SCHEMA, EmbeddedLabels
from .row_tables import RowCache
from .rows import row_digests
from .file_root import FileRoot
from .owner import DirectoryOwner
from .sql_catalog import (DELETING_SCHEMA, INGESTED_AT_TABLES, JOB_COLUMNS, JOB_INDEXES, POOL_COLUMNS,
                          REQUEST_ID_TABLES, REQUEST_INDEXES, RUN_COLUMNS, CopyCheck, SqlCatalog, deletion_plan,
                          empty_destination, suggestion_set_deletion_plan, suggestion_set_insert)

log = logging.getLogger("blindspots.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, name TEXT, project TEXT, model_name TEXT, model_version TEXT,
  dataset_name TEXT, class_names TEXT, embedding_dim INTEGER, created_at REAL,
  num_rows INTEGER DEFAULT 0, metadata_schema TEXT DEFAULT '{}');
CREATE TABLE IF NOT EXISTS pools (
  id TEXT PRIMARY KEY, name TEXT, project TEXT, embedding_dim INTEGER, num_classes INTEGER,
  created_at REAL, num_rows INTEGER DEFAULT 0, metadata_schema TEXT DEFAULT '{}',
  index_kind TEXT DEFAULT '', index_rows INTEGER DEFAULT 0, index_description TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS batches (
  target TEXT, target_id TEXT, batch_id TEXT, seq INTEGER, file TEXT, rows INTEGER,
  PRIMARY KEY (target, target_id, batch_id));
CREATE TABLE IF NOT EXISTS sample_ids (
  target TEXT, target_id TEXT, sample_id TEXT, digest TEXT DEFAULT '',
  PRIMARY KEY (target, target_id, sample_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS diagnoses (
  id TEXT PRIMARY KEY, run_id TEXT, created_at REAL, job_id TEXT, payload BLOB);
CREATE INDEX IF NOT EXISTS diagnoses_run ON diagnoses (run_id, created_at);
CREATE INDEX IF NOT EXISTS diagnoses_created ON diagnoses (created_at);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind TEXT, run_id TEXT, state TEXT, fraction_done REAL, stage TEXT,
  result_id TEXT, error TEXT, created_at REAL, updated_at REAL, pool_id TEXT NOT NULL DEFAULT '',
  started_at REAL NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS suggestion_sets (
  id TEXT PRIMARY KEY, run_id TEXT, pool_id TEXT, diagnosis_id TEXT, strategy TEXT,
  budget INTEGER, num_candidates INTEGER, created_at REAL, name TEXT);
CREATE TABLE IF NOT EXISTS suggested (
  set_id TEXT, run_id TEXT, pool_id TEXT, sample_id TEXT);
CREATE INDEX IF NOT EXISTS suggested_target ON suggested (run_id, pool_id);
CREATE INDEX IF NOT EXISTS suggested_pool ON suggested (pool_id);
CREATE INDEX IF NOT EXISTS suggestion_sets_run ON suggestion_sets (run_id);
CREATE INDEX IF NOT EXISTS suggestion_sets_pool ON suggestion_sets (pool_id);
CREATE TABLE IF NOT EXISTS files (
  path TEXT PRIMARY KEY, sha256 TEXT, bytes INTEGER);
""" + DELETING_SCHEMA


def index_path(pool_id: str) -> str:
    """Where a pool's index blob lives in a data directory: one name, replaced in place."""
    return f"pools/{pool_id}/index.faiss"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class EmbeddedStore(SqlCatalog, EmbeddedLabels, Store):
    def __init__(self, data_dir: str | os.PathLike, cache_tables: int = 4, cache_bytes: int = 2 << 30, *,
                 catalog_rebuild: bool = False, owner: Optional[DirectoryOwner] = None):
        """Open (or create) the store in ``data_dir``, owning it (:mod:`.owner`) until :meth:`close`.

        ``catalog_rebuild`` is for :func:`.maintenance.recover_store` alone: it opens a
        new, empty catalog beside existing data files without taking them as debris; it
        holds the directory already (``owner``).
        """
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._owner, self._owns = owner or DirectoryOwner(self.root), owner is None
        try:
            self._open(cache_tables, cache_bytes, catalog_rebuild)
        except BaseException:
            if self._owns:
                self._owner.release()
            raise

    def _open(self, cache_tables: int, cache_bytes: int, catalog_rebuild: bool) -> None:
        if not catalog_rebuild:
            maintenance.refuse_unusable(self.root)  # data files but no usable catalog: stop here
        for sub in ("runs", "pools", "diagnoses", "suggestions", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.root / maintenance.CATALOG, check_same_thread=False,
                                       isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            maintenance.check_catalog_integrity(self._db)
            self._db.executescript(_SCHEMA + LABELS_SCHEMA)
            # Columns added since older catalogs were made; their rows get the default.
            self._add_column("sample_ids", "digest", "TEXT DEFAULT ''")      # before per-row idempotency
            for table in REQUEST_ID_TABLES:                                   # before request ids
                self._add_column(table, "request_id", "TEXT NOT NULL DEFAULT ''")
            for table in INGESTED_AT_TABLES:                                  # 0: no ingest known since
                self._add_column(table, "ingested_at", "REAL NOT NULL DEFAULT 0")
            self._add_column("jobs", "pool_id", "TEXT NOT NULL DEFAULT ''")   # index builds named no pool
            self._add_column("jobs", "started_at", "REAL NOT NULL DEFAULT 0")  # 0: start unknown
            for index in (*REQUEST_INDEXES, *JOB_INDEXES):
                self._db.execute(index)
        except sqlite3.DatabaseError as exc:
            raise StoreUnusable(maintenance.unusable_message(self.root, f"the catalog cannot be read ({exc})")) \
                from None
        self.quarantined: list[str] = []            # files moved aside by the last open
        self._lock = threading.RLock()              # guards the connection
        self._target_locks: dict[tuple[str, str], threading.Lock] = {}
        # Recently read row tables (a suggest re-reads the same run and pool).
        self._cache = RowCache(cache_tables, cache_bytes)
        if not catalog_rebuild:
            self._recover()

    # ------------------------------------------------------------ helpers
    def _recover(self) -> None:
        """Clear tmp/ (never acknowledged), finish committed deletions, and quarantine files no
        committed catalog row names."""
        for f in (self.root / "tmp").iterdir():
            f.unlink(missing_ok=True)
        self._finish_deletions()
        orphans = maintenance.unaccounted_files(self.root, self.known_files())
        if orphans:
            self.quarantined = maintenance.quarantine(self.root, orphans)
            log.warning("moved %d file(s) that no catalog row names to %s (crash debris, or a catalog that "
                        "lost rows; `blindspots store check` lists them)", len(orphans),
                        Path(self.quarantined[0]).parts[0] + "/" + Path(self.quarantined[0]).parts[1])
        # Jobs of a previous process that never finished never will.
        self._exec([("UPDATE jobs SET state='FAILED', stage='failed', "
                     "error='the server stopped before the job finished; start it again' "
                     "WHERE state IN ('PENDING', 'RUNNING')", ())])

    def _add_column(self, table: str, column: str, declaration: str) -> None:
        """Give ``table`` the ``column`` an older catalog lacks (SQLite has no ADD COLUMN IF NOT EXISTS)."""
        if column not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _exec(self, statements: list[tuple[str, tuple]], exists: tuple[tuple[str, str], ...] = ()) -> int:
        """The statements in one transaction, after checking inside it that every (target, id) of
        ``exists`` is still there (NotFound if one was deleted: nothing is written for it). Returns the
        number of rows the last statement changed."""
        changed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for target, target_id in exists:
                    if not self._db.execute(f"SELECT 1 FROM {self._table_name(target)} WHERE id=?",
                                            (target_id,)).fetchone():
                        raise NotFound(f"{target} {target_id!r} not found (deleted)")
                for sql, args in statements:
                    changed = self._db.execute(sql, args).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return changed

    def _rollback(self) -> None:
        # SQLite may already have rolled the transaction back itself (SQLITE_FULL, SQLITE_IOERR);
        # a second ROLLBACK would raise and hide the error that caused it.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _target_lock(self, target: str, target_id: str) -> threading.Lock:
        with self._lock:
            return self._target_locks.setdefault((target, target_id), threading.Lock())

    def known_files(self) -> set[str]:
        """Paths (relative to the data directory) of every file a catalog row names."""
        known = {row[0] for row in self._query("SELECT file FROM batches")}
        known |= {row[0] for row in self._query("SELECT path FROM files")}
        known |= {f"diagnoses/{row[0]}.parquet" for row in self._query("SELECT id FROM diagnoses")}
        known |= {f"suggestions/{row[0]}.parquet" for row in self._query("SELECT id FROM suggestion_sets")}
        known |= {row[0] for row in self._query("SELECT path FROM deleting")}
        return known

    def _commit_new_file(self, rel: Path, statements: list[tuple[str, tuple]],
                         exists: tuple[tuple[str, str], ...]) -> None:
        """Commit the catalog rows of a file just written under a new name; remove it if that fails."""
        try:
            self._exec(statements, exists)
        except BaseException:
            (self.root / rel).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------ deletion
    def delete(self, target: str, target_id: str, force: bool = False) -> DeleteOutcome:
        with self._target_lock(target, target_id):      # ingest into it holds this lock too
            outcome = self._delete_planned(lambda query: deletion_plan(
                query, "?", target, target_id, force, lambda pool_ids: self._index_files(None, pool_ids)))
            self._cache.forget(target, target_id)
        with self._lock:
            self._target_locks.pop((target, target_id), None)
        self._finish_deletions()
        return outcome

    def delete_suggestion_set(self, set_id: str) -> DeleteOutcome:
        outcome = self._delete_planned(lambda query: suggestion_set_deletion_plan(query, "?", set_id))
        self._finish_deletions()
        return outcome

    def _delete_planned(self, plan) -> DeleteOutcome:
        """Carry out ``plan(query)`` (:func:`deletion_plan`'s answer) in one transaction: its
        statements, the files' rows out, and the files into ``deleting`` for _finish_deletions."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                outcome, paths, statements = plan(lambda sql, args: self._db.execute(sql, args).fetchall())
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.executemany("DELETE FROM files WHERE path=?", ((rel,) for rel in paths))
                self._db.executemany("INSERT INTO deleting (path) VALUES (?) ON CONFLICT DO NOTHING",
                                     ((rel,) for rel in paths))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return outcome

    def _finish_deletions(self) -> None:
        """Remove the files of committed deletions (and the run's or pool's emptied directory)."""
        paths, parents = [], set()
        for (rel,) in self._query("SELECT path FROM deleting"):
            try:
                (self.root / rel).unlink(missing_ok=True)
            except OSError as exc:                   # kept in `deleting`: tried again at the next open
                log.warning("could not remove %s of a deleted run, pool or suggestion set (%s); the next start tries again",
                            rel, exc)
                continue
            paths.append(rel)
            parents.add((self.root / rel).parent)
        for parent in sorted(parents, reverse=True):
            if parent.parent.name in ("runs", "pools") and parent.parent.parent == self.root:
                try:
                    parent.rmdir()                       # only if empty
                except OSError:
                    pass
            if parent.exists():
                fsync_dir(parent)
        for top in {p.parent for p in parents if p.parent.exists()}:
            fsync_dir(top)
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            self._exec([(f"DELETE FROM deleting WHERE path IN ({','.join('?' * len(chunk))})", tuple(chunk))])

    def _write_parquet(self, table: pa.Table, rel: Path, meta: dict) -> tuple[str, tuple]:
        """Write a data file; the catalog statement recording its hash, for the caller's transaction."""
        digest = write_parquet(table, self.root / "tmp", self.root / rel, meta)
        size = (self.root / rel).stat().st_size
        return ("INSERT OR REPLACE INTO files VALUES (?,?,?)", (str(rel), digest, size))

    def _sha256(self, rel: str) -> str:
        rows = self._query("SELECT sha256 FROM files WHERE path=?", (rel,))
        return rows[0][0] if rows else ""

    # ------------------------------------------------------------ runs / pools
    def create_run(self, run: RunRecord) -> RunRecord:
        self._exec([(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (run.id, run.name, run.project, run.model_name, run.model_version,
                      run.dataset_name, json.dumps(run.class_names), run.embedding_dim,
                      run.created_at, 0, "{}", run.request_id))])
        return self.get_run(run.id)

    @staticmethod
    def _project_filter(projects: Optional[list[str]]) -> tuple[str, tuple]:
        if projects is None:
            return "", ()
        return f"WHERE project IN ({','.join('?' * len(projects))})", tuple(projects)

    def create_pool(self, pool: PoolRecord) -> PoolRecord:
        self._exec([(f"INSERT INTO pools ({POOL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (pool.id, pool.name, pool.project, pool.embedding_dim, pool.num_classes,
                      pool.created_at, 0, "{}", "", 0, "", pool.request_id))])
        return self.get_pool(pool.id)

    # ------------------------------------------------------------ rows
    def ingest_batch(self, target: str, target_id: str, batch_id: str, table: pa.Table,
                     schema: dict[str, str]) -> IngestOutcome:
        tname = self._table_name(target)
        with self._target_lock(target, target_id):
            rows = self._query(f"SELECT num_rows, metadata_schema FROM {tname} WHERE id=?", (target_id,))
            if not rows:
                raise NotFound(f"{target} {target_id!r} not found")
            total, stored_schema = rows[0][0], json.loads(rows[0][1])
            if self._query("SELECT 1 FROM batches WHERE target=? AND target_id=? AND batch_id=?",
                           (target, target_id, batch_id)):
                return IngestOutcome(stored=False, rows=table.num_rows, total_rows=total)
            merged = merged_schema(stored_schema, schema, target)
            received = table.num_rows
            table, digests = rows_not_stored(table, row_digests(table),
                                             self._stored_digests(target, target_id, table), target, target_id)
            skipped = received - table.num_rows
            if not table.num_rows:      # every row was stored before, with this content
                return IngestOutcome(stored=False, rows=received, total_rows=total, rows_already_stored=skipped)
            seq = self._query("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE target=? AND target_id=?",
                              (target, target_id))[0][0]
            rel = Path(tname) / target_id / f"part-{seq:08d}-{uuid.uuid4().hex[:8]}.parquet"
            ids = table.column("sample_id").to_pylist()
            record = self.get_run(target_id) if target == "run" else self.get_pool(target_id)
            file_row = self._write_parquet(table, rel, {
                "kind": "batch", "target": target, "batch_id": batch_id, "seq": seq,
                "record": maintenance.record_fields(record)})
            try:
                self._commit_batch(target, target_id, batch_id, seq, rel, ids, digests, merged, file_row)
            except BaseException:
                (self.root / rel).unlink(missing_ok=True)
                raise
            return IngestOutcome(stored=True, rows=received, total_rows=total + table.num_rows,
                                 rows_already_stored=skipped)

    def _stored_digests(self, target: str, target_id: str, table: pa.Table) -> dict[str, str]:
        """Content digests of the batch's sample ids that the target already holds."""
        ids = table.column("sample_id").to_pylist()
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(self._query(
                f"SELECT sample_id, digest FROM sample_ids WHERE target=? AND target_id=? AND sample_id IN "
                f"({','.join('?' * len(chunk))})", (target, target_id, *chunk)))
        return found

    def _commit_batch(self, target: str, target_id: str, batch_id: str, seq: int, rel: Path,
                      ids: list[str], digests: list[str], schema: dict[str, str],
                      file_row: tuple[str, tuple]) -> None:
        """One transaction: the batch row, its sample ids, its file's hash, the target's row count."""
        tname = self._table_name(target)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO batches VALUES (?,?,?,?,?,?)",
                                 (target, target_id, batch_id, seq, str(rel), len(ids)))
                self._db.execute(*file_row)
                self._db.executemany("INSERT INTO sample_ids (target, target_id, sample_id, digest) "
                                     "VALUES (?,?,?,?)", ((target, target_id, sid, d) for sid, d in zip(ids, digests)))
                self._db.execute(f"UPDATE {tname} SET num_rows = num_rows + ?, metadata_schema = ?, ingested_at = ? "
                                 "WHERE id=?", (len(ids), json.dumps(schema, sort_keys=True), time.time(), target_id))
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._rollback()
                dup = self._first_stored(target, target_id, ids)
                raise DuplicateSampleIds(f"sample_ids: id {dup!r} is already stored in {target} {target_id!r} "
                                         "by an earlier batch (sample ids are unique per "
                                         f"{target}; nothing of this batch was stored)", dup) from None
            except BaseException:
                self._rollback()
                raise

    def _first_stored(self, target: str, target_id: str, ids: list[str]) -> str:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._db.execute(
                f"SELECT sample_id FROM sample_ids WHERE target=? AND target_id=? AND sample_id IN "
                f"({','.join('?' * len(chunk))})", (target, target_id, *chunk)).fetchall()
            if rows:
                found = {r[0] for r in rows}
                return next(sid for sid in chunk if sid in found)
        return ""

    def _read_stored_file(self, rel: str, what: str, columns: Optional[list[str]]) -> pa.Table:
        return read_parquet(self.root / rel, what, columns)

    def _index_files(self, query, pool_ids: list[str]) -> dict[str, list[str]]:
        return {p: [index_path(p)] for p in pool_ids}

    def _file_location(self, rel: str) -> str:
        return str(self.root.resolve() / rel)          # workers start elsewhere: absolute paths

    # ------------------------------------------------------------ index blobs
    def save_index(self, pool_id: str, data: bytes, kind: str, rows: int, description: str) -> None:
        self.get_pool(pool_id)
        rel = index_path(pool_id)
        digest = write_blob(data, self.root / "tmp", self.root / rel)
        try:
            self._exec([("UPDATE pools SET index_kind=?, index_rows=?, index_description=? WHERE id=?",
                         (kind, rows, description, pool_id)),
                        ("INSERT OR REPLACE INTO files VALUES (?,?,?)", (rel, digest, len(data)))],
                       exists=(("pool", pool_id),))
        except NotFound:                 # the pool was deleted meanwhile: leave nothing of it
            (self.root / rel).unlink(missing_ok=True)
            try:
                (self.root / rel).parent.rmdir()
            except OSError:
                pass
            raise

    def load_index(self, pool_id: str) -> Optional[bytes]:
        rel = index_path(pool_id)
        if not (self.root / rel).exists():
            return None
        return read_blob(self.root / rel, f"the index of pool {pool_id!r}", self._sha256(rel))

    # ------------------------------------------------------------ diagnoses
    def save_diagnosis(self, record: DiagnosisRecord, per_sample: pa.Table) -> None:
        fields = {**dataclasses.asdict(record), "payload": base64.b64encode(record.payload).decode()}
        rel = Path("diagnoses") / f"{record.id}.parquet"
        file_row = self._write_parquet(per_sample, rel, {"kind": "diagnosis", "record": fields})
        self._commit_new_file(rel, [("INSERT INTO diagnoses VALUES (?,?,?,?,?)",
                                     (record.id, record.run_id, record.created_at, record.job_id, record.payload)),
                                    file_row], exists=(("run", record.run_id),))

    # ------------------------------------------------------------ jobs
    def save_job(self, job: JobRecord) -> None:
        self._exec([(f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (job.id, job.kind, job.run_id, job.state, job.fraction_done, job.stage,
                      job.result_id, job.error, job.created_at, job.updated_at, job.pool_id, job.started_at))])

    def get_job(self, job_id: str) -> JobRecord:
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,))
        if not rows:
            raise NotFound(f"job {job_id!r} not found")
        return JobRecord(*rows[0])

    def prune_jobs(self, finished_before: float) -> int:
        return self._exec([(self._prune_jobs_statement("?"), (finished_before,))])

    # ------------------------------------------------------------ suggestion sets
    def save_suggestion_set(self, record: SuggestionSetRecord, candidates: pa.Table) -> None:
        rel = Path("suggestions") / f"{record.id}.parquet"
        file_row = self._write_parquet(candidates, rel, {"kind": "suggestion_set", "record": dataclasses.asdict(record)})
        ids = candidates.column("sample_id").to_pylist()
        self._commit_new_file(rel, [suggestion_set_insert(record, "?"), file_row]
                              + [("INSERT INTO suggested VALUES (?,?,?,?)",
                                  (record.id, record.run_id, record.pool_id, sid)) for sid in ids],
                              exists=(("run", record.run_id), ("pool", record.pool_id)))

    # ------------------------------------------------------------ a copy's destination (transfer.py)
    @property
    def file_root(self) -> FileRoot:
        return FileRoot(self.root)

    def catalog_columns(self, table: str) -> list[str]:
        return [r[1] for r in self._query(f"PRAGMA table_info({table})")]

    @staticmethod
    def copied_index_path(pool_id: str, source_path: str) -> str:
        return index_path(pool_id)     # the one name this store reads

    def load_catalog(self, tables, check: CopyCheck = empty_destination) -> None:
        """Rows copied from another store, (table, columns, rows) each, in one transaction that
        first runs the copy's ``check`` of this store again (by default: every table still empty)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                check(lambda sql, args: self._db.execute(sql, args).fetchall(), self.PLACEHOLDER)
                for table, columns, rows in tables:
                    self._db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                                         f"VALUES ({', '.join('?' * len(columns))})", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    # ------------------------------------------------------------ housekeeping
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._owns:
                self._owner.release()
