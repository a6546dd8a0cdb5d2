"""The production store: a PostgreSQL catalog and data files under a :class:`.FileRoot`.

    --store postgresql://user@host:5432/db     runs, pools, batches, sample ids, diagnoses,
                                               jobs (with leases), suggestion sets, file hashes
    --files /shared/dir | s3://bucket/prefix   runs/<id>/*.parquet, pools/<id>/index-*.faiss,
                                               diagnoses/<id>.parquet, suggestions/<id>.parquet

Several servers may open the same catalog and file root at once (``shared``):

- a batch is written to its own new file, then one transaction inserts the
  batch row, its sample ids (a unique key: a repeated id rolls everything back),
  the file's SHA-256 and the new row count, holding the run's (or pool's) row
  lock, so replicas ingesting into one run serialise there as threads do in
  the embedded store; a file whose commit failed is removed;
- index blobs get a new name per write (never overwritten) and the pool row
  names the current one, so a replica never reads a half-replaced index;
- nothing is deleted at start-up: a file without a catalog row may be another
  replica's write in flight (its commit is still to come);
- jobs are a queue claimed with ``FOR UPDATE SKIP LOCKED`` under a lease on the
  database's clock (:mod:`.postgres_jobs`);
- deleting a run or pool takes its row lock ``FOR UPDATE``, removes its catalog
  rows and records its files in ``deleting`` in one transaction, then removes
  the files; writes for a run or pool (batches, diagnoses, suggestion sets,
  labels, index) hold its row lock too, so a write racing a delete either lands
  first or finds it gone. Any replica that opens the store finishes the
  deletions a stopped one left in ``deleting`` (recorded, so never a guess).
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import pyarrow as pa

from .base import (DataLoss, DeleteOutcome, DiagnosisRecord, DuplicateSampleIds, IngestOutcome, JobRecord, NotFound, PoolRecord,
                   RunRecord, Store, StoreUnavailable, SuggestionSetRecord, merged_schema, rows_not_stored)
from .file_root import FileRoot
from .postgres_jobs import JobQueueMixin
from .postgres_labels import LABELS_SCHEMA, PostgresLabels
from .row_tables import RowCache
from .rows import row_digests
from .sql_catalog import (COPIED_TABLES, DELETING_SCHEMA, INGESTED_AT_TABLES, JOB_COLUMNS, JOB_INDEXES,
                          POOL_COLUMNS, REQUEST_ID_TABLES,
                          REQUEST_INDEXES, RUN_COLUMNS, CopyCheck, SqlCatalog, deletion_plan, empty_destination, suggestion_set_deletion_plan,
                          suggestion_set_insert)

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError:  # the optional extra: pip install 'blindspots-server[postgres]'
    psycopg = None

log = logging.getLogger("blindspots.store")
_SCHEMA_LOCK = 0x626C696E64   # advisory lock: replicas starting together create the tables once
_NAMED_LOCK_CLASS = 0x626C73  # the first key of Store.exclusive's advisory locks (the second: the name's hash)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, name TEXT, project TEXT, model_name TEXT, model_version TEXT,
  dataset_name TEXT, class_names TEXT, embedding_dim INTEGER, created_at DOUBLE PRECISION,
  num_rows BIGINT DEFAULT 0, metadata_schema TEXT DEFAULT '{}');
CREATE TABLE IF NOT EXISTS pools (
  id TEXT PRIMARY KEY, name TEXT, project TEXT, embedding_dim INTEGER, num_classes INTEGER,
  created_at DOUBLE PRECISION, num_rows BIGINT DEFAULT 0, metadata_schema TEXT DEFAULT '{}',
  index_kind TEXT DEFAULT '', index_rows BIGINT DEFAULT 0, index_description TEXT DEFAULT '',
  index_file TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS batches (
  target TEXT, target_id TEXT, batch_id TEXT, seq INTEGER, file TEXT, rows INTEGER,
  PRIMARY KEY (target, target_id, batch_id));
CREATE TABLE IF NOT EXISTS sample_ids (
  target TEXT, target_id TEXT, sample_id TEXT, PRIMARY KEY (target, target_id, sample_id));
ALTER TABLE sample_ids ADD COLUMN IF NOT EXISTS digest TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS diagnoses (
  id TEXT PRIMARY KEY, run_id TEXT, created_at DOUBLE PRECISION, job_id TEXT, payload BYTEA);
CREATE INDEX IF NOT EXISTS diagnoses_run ON diagnoses (run_id, created_at);
CREATE INDEX IF NOT EXISTS diagnoses_created ON diagnoses (created_at);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind TEXT, run_id TEXT, state TEXT, fraction_done DOUBLE PRECISION, stage TEXT,
  result_id TEXT, error TEXT, created_at DOUBLE PRECISION, updated_at DOUBLE PRECISION,
  params TEXT DEFAULT '{}', owner TEXT DEFAULT '', lease_until DOUBLE PRECISION DEFAULT 0,
  attempts INTEGER DEFAULT 0, cancel_requested BOOLEAN DEFAULT false);
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS pool_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS started_at DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, created_at);
""" + "".join(f"{q};\n" for q in JOB_INDEXES) + """
CREATE TABLE IF NOT EXISTS suggestion_sets (
  id TEXT PRIMARY KEY, run_id TEXT, pool_id TEXT, diagnosis_id TEXT, strategy TEXT,
  budget INTEGER, num_candidates INTEGER, created_at DOUBLE PRECISION, name TEXT);
CREATE TABLE IF NOT EXISTS suggested (set_id TEXT, run_id TEXT, pool_id TEXT, sample_id TEXT);
CREATE INDEX IF NOT EXISTS suggested_target ON suggested (run_id, pool_id);
CREATE INDEX IF NOT EXISTS suggested_pool ON suggested (pool_id);
CREATE INDEX IF NOT EXISTS suggestion_sets_run ON suggestion_sets (run_id);
CREATE INDEX IF NOT EXISTS suggestion_sets_pool ON suggestion_sets (pool_id);
""" + "".join(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS request_id TEXT NOT NULL DEFAULT '';\n"
               for t in REQUEST_ID_TABLES) + "".join(
    f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS ingested_at DOUBLE PRECISION NOT NULL DEFAULT 0;\n"
    for t in INGESTED_AT_TABLES) + "".join(f"{q};\n" for q in REQUEST_INDEXES) + """
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, sha256 TEXT, bytes BIGINT);
""" + DELETING_SCHEMA
_FILE_ROW = ("INSERT INTO files VALUES (%s, %s, %s) ON CONFLICT (path) DO UPDATE "
             "SET sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes")


class PostgresStore(SqlCatalog, JobQueueMixin, PostgresLabels, Store):
    PLACEHOLDER = "%s"
    shared = True

    def __init__(self, catalog: str, files: str, cache_tables: int = 4, cache_bytes: int = 2 << 30,
                 max_connections: int = 10):
        if psycopg is None:
            raise ValueError("the postgresql store needs psycopg: pip install 'blindspots-server[postgres]'")
        if not files:
            raise ValueError("the postgresql store needs a file root for row files: --files DIR or URI "
                             "(a directory every replica mounts, or s3://..., gs://...)")
        self.files = FileRoot(files)
        self._catalog = catalog
        self._pool = ConnectionPool(catalog, min_size=1, max_size=max_connections, open=False,
                                    kwargs={"autocommit": False, "prepare_threshold": None},
                                    name="blindspots-catalog")
        try:
            self._pool.open(wait=True, timeout=30)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot reach the PostgreSQL catalog ({exc})") from None
        except Exception as exc:    # psycopg_pool.PoolTimeout
            self._pool.close()
            raise StoreUnavailable(f"cannot reach the PostgreSQL catalog ({exc})") from None
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute(_SCHEMA + LABELS_SCHEMA)
        self._cache = RowCache(cache_tables, cache_bytes)
        self._finish_deletions()

    # ------------------------------------------------------------ helpers
    @contextmanager
    def _tx(self) -> Iterator["psycopg.Cursor"]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self._pool.connection() as conn:
                with conn.cursor() as cur:
                    yield cur
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the PostgreSQL catalog is unavailable ({exc})") from None

    @contextmanager
    def exclusive(self, key: str, waiting: Optional[Callable[[], None]] = None) -> Iterator[None]:
        """The named lock across replicas: a PostgreSQL session advisory lock on a connection of
        its own, outside the pool (the block's own queries need the pool's connections: holders
        taking pooled ones could leave none). Closing the session releases the lock, also when
        this process dies."""
        told: list[bool] = []

        def tell_once() -> None:               # a wait here and then on another replica is one wait to say
            if waiting is not None and not told:
                told.append(True)
                waiting()

        with super().exclusive(key, tell_once):  # this process's threads queue here, not on connections
            try:
                conn = psycopg.connect(self._catalog, autocommit=True)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"the PostgreSQL catalog is unavailable ({exc})") from None
            try:
                args = (_NAMED_LOCK_CLASS, key)
                if not conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", args).fetchone()[0]:
                    tell_once()                 # another replica holds it
                    conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", args)
                yield
            finally:
                conn.close()

    def _hold(self, cur, target: str, target_id: str) -> None:
        """Share-lock a run's or pool's row for a write that belongs to it (a delete waits for the
        write, or the write finds it gone: NotFound)."""
        cur.execute(f"SELECT 1 FROM {self._table_name(target)} WHERE id=%s FOR SHARE", (target_id,))
        if cur.fetchone() is None:
            raise NotFound(f"{target} {target_id!r} not found")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._tx() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def _sha256(self, rel: str) -> str:
        rows = self._query("SELECT sha256 FROM files WHERE path=%s", (rel,))
        return rows[0][0] if rows else ""

    # ------------------------------------------------------------ runs / pools
    def create_run(self, run: RunRecord) -> RunRecord:
        with self._tx() as cur:
            cur.execute(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,0,'{{}}',%s)",
                        (run.id, run.name, run.project, run.model_name, run.model_version, run.dataset_name,
                         json.dumps(run.class_names), run.embedding_dim, run.created_at, run.request_id))
        return self.get_run(run.id)

    @staticmethod
    def _project_filter(projects: Optional[list[str]]) -> tuple[str, tuple]:
        if projects is None:
            return "", ()
        return "WHERE project = ANY(%s)", (list(projects),)

    def create_pool(self, pool: PoolRecord) -> PoolRecord:
        with self._tx() as cur:
            cur.execute(f"INSERT INTO pools ({POOL_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,0,'{{}}','',0,'',%s)",
                        (pool.id, pool.name, pool.project, pool.embedding_dim, pool.num_classes, pool.created_at,
                         pool.request_id))
        return self.get_pool(pool.id)

    # ------------------------------------------------------------ deletion
    def delete(self, target: str, target_id: str, force: bool = False) -> DeleteOutcome:
        # Its row lock: writes for it (which share-lock the row) finish first, or find it gone.
        outcome = self._delete_planned(f"SELECT 1 FROM {self._table_name(target)} WHERE id=%s FOR UPDATE", target_id,
                                       lambda query: deletion_plan(query, "%s", target, target_id, force,
                                                                   lambda pool_ids: self._index_files(query, pool_ids)))
        self._cache.forget(target, target_id)
        self._finish_deletions()
        return outcome

    def delete_suggestion_set(self, set_id: str) -> DeleteOutcome:
        outcome = self._delete_planned("SELECT 1 FROM suggestion_sets WHERE id=%s FOR UPDATE", set_id,
                                       lambda query: suggestion_set_deletion_plan(query, "%s", set_id))
        self._finish_deletions()
        return outcome

    def _delete_planned(self, lock_sql: str, key: str, plan) -> DeleteOutcome:
        """Carry out ``plan(query)`` (:func:`deletion_plan`'s answer) in one transaction, after
        ``lock_sql`` locks the row of ``key``: its statements, the files' rows out, and the files
        into ``deleting`` for _finish_deletions."""
        with self._tx() as cur:
            cur.execute(lock_sql, (key,))

            def query(sql: str, args: tuple) -> list[tuple]:
                cur.execute(sql, args)
                return cur.fetchall()

            outcome, paths, statements = plan(query)
            for sql, args in statements:
                cur.execute(sql, args)
            cur.execute("DELETE FROM files WHERE path = ANY(%s)", (paths,))
            cur.execute("INSERT INTO deleting (path) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (paths,))
        return outcome

    def _finish_deletions(self) -> None:
        """Remove the files of committed deletions, this replica's or a stopped one's."""
        paths = []
        for (rel,) in self._query("SELECT path FROM deleting"):
            self.files.delete(rel)
            if self.files.exists(rel):                # kept in `deleting`: tried again at the next open
                log.warning("could not remove %s of a deleted run, pool or suggestion set; the next start tries again", rel)
                continue
            paths.append(rel)
        for folder in sorted({rel.rsplit("/", 1)[0] for rel in paths if rel.startswith(("runs/", "pools/"))}):
            self.files.remove_empty_dir(folder)
        if paths:
            with self._tx() as cur:
                cur.execute("DELETE FROM deleting WHERE path = ANY(%s)", (paths,))

    # ------------------------------------------------------------ rows
    def ingest_batch(self, target: str, target_id: str, batch_id: str, table: pa.Table,
                     schema: dict[str, str]) -> IngestOutcome:
        tname = self._table_name(target)
        ids = table.column("sample_id").to_pylist()
        rel = ""
        try:
            with self._tx() as cur:
                # The target's row lock serialises batches into one run or pool across replicas.
                cur.execute(f"SELECT num_rows, metadata_schema FROM {tname} WHERE id=%s FOR UPDATE", (target_id,))
                row = cur.fetchone()
                if row is None:
                    raise NotFound(f"{target} {target_id!r} not found")
                total, stored_schema = row[0], json.loads(row[1])
                cur.execute("SELECT 1 FROM batches WHERE target=%s AND target_id=%s AND batch_id=%s",
                            (target, target_id, batch_id))
                if cur.fetchone():
                    return IngestOutcome(stored=False, rows=table.num_rows, total_rows=total)
                merged = merged_schema(stored_schema, schema, target)
                received = table.num_rows
                # Under the target's row lock: no other replica adds ids between this look-up and the insert.
                cur.execute("SELECT sample_id, digest FROM sample_ids WHERE target=%s AND target_id=%s "
                            "AND sample_id = ANY(%s)", (target, target_id, ids))
                table, digests = rows_not_stored(table, row_digests(table), dict(cur.fetchall()), target, target_id)
                ids = table.column("sample_id").to_pylist()
                if not ids:             # every row was stored before, with this content
                    return IngestOutcome(stored=False, rows=received, total_rows=total,
                                         rows_already_stored=received)
                cur.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE target=%s AND target_id=%s",
                            (target, target_id))
                seq = cur.fetchone()[0]
                rel = f"{tname}/{target_id}/part-{seq:08d}-{uuid.uuid4().hex[:8]}.parquet"
                digest, size = self.files.write_parquet(table, rel, {
                    "kind": "batch", "target": target, "batch_id": batch_id, "seq": seq})
                cur.execute("INSERT INTO batches VALUES (%s,%s,%s,%s,%s,%s)",
                            (target, target_id, batch_id, seq, rel, len(ids)))
                cur.execute(_FILE_ROW, (rel, digest, size))
                with cur.copy("COPY sample_ids (target, target_id, sample_id, digest) FROM STDIN") as copy:
                    for sid, digest_of_row in zip(ids, digests):
                        copy.write_row((target, target_id, sid, digest_of_row))
                cur.execute(f"UPDATE {tname} SET num_rows = num_rows + %s, metadata_schema = %s, ingested_at = %s "
                            "WHERE id=%s", (len(ids), json.dumps(merged, sort_keys=True), time.time(), target_id))
        except psycopg.errors.UniqueViolation:
            self.files.delete(rel)
            dup = self._first_stored(target, target_id, ids)
            raise DuplicateSampleIds(f"sample_ids: id {dup!r} is already stored in {target} {target_id!r} "
                                     "by an earlier batch (sample ids are unique per "
                                     f"{target}; nothing of this batch was stored)", dup) from None
        except BaseException:
            if rel:
                self.files.delete(rel)
            raise
        return IngestOutcome(stored=True, rows=received, total_rows=total + table.num_rows,
                             rows_already_stored=received - table.num_rows)

    def _first_stored(self, target: str, target_id: str, ids: list[str]) -> str:
        rows = self._query("SELECT sample_id FROM sample_ids WHERE target=%s AND target_id=%s AND sample_id = ANY(%s)",
                           (target, target_id, ids))
        found = {r[0] for r in rows}
        return next((sid for sid in ids if sid in found), "")

    def _read_stored_file(self, rel: str, what: str, columns: Optional[list[str]]) -> pa.Table:
        return self.files.read_parquet(rel, what, columns)

    def _index_files(self, query, pool_ids: list[str]) -> dict[str, list[str]]:
        # A new name per write; the pool row names the current one (the one before is deleted).
        out: dict[str, list[str]] = {p: [] for p in pool_ids}
        for pool_id, path in query("SELECT id, index_file FROM pools WHERE id = ANY(%s) AND index_file <> ''",
                                   (list(pool_ids),)):
            out[pool_id].append(path)
        return out

    def _file_location(self, rel: str) -> str:
        return self.files.location(rel)

    # ------------------------------------------------------------ index blobs
    def save_index(self, pool_id: str, data: bytes, kind: str, rows: int, description: str) -> None:
        self.get_pool(pool_id)
        rel = f"pools/{pool_id}/index-{uuid.uuid4().hex[:12]}.faiss"
        digest, size = self.files.write_blob(data, rel)
        try:
            with self._tx() as cur:
                cur.execute("SELECT index_file FROM pools WHERE id=%s FOR UPDATE", (pool_id,))
                found = cur.fetchone()
                if found is None:
                    raise NotFound(f"pool {pool_id!r} not found")
                previous = found[0]
                cur.execute("UPDATE pools SET index_kind=%s, index_rows=%s, index_description=%s, index_file=%s "
                            "WHERE id=%s", (kind, rows, description, rel, pool_id))
                cur.execute(_FILE_ROW, (rel, digest, size))
                if previous:
                    cur.execute("DELETE FROM files WHERE path=%s", (previous,))
        except BaseException:
            self.files.delete(rel)
            raise
        if previous:
            # A replica reading it right now retries with the new name (load_index).
            self.files.delete(previous)

    def load_index(self, pool_id: str) -> Optional[bytes]:
        for attempt in range(3):
            rows = self._query("SELECT p.index_file, f.sha256 FROM pools p LEFT JOIN files f ON f.path = p.index_file "
                               "WHERE p.id=%s", (pool_id,))
            if not rows or not rows[0][0]:
                return None
            rel, digest = rows[0]
            try:
                return self.files.read_blob(rel, f"the index of pool {pool_id!r}", digest or "")
            except DataLoss:
                # Replaced by another replica between the query and the read?
                if attempt == 2 or self.files.exists(rel):
                    raise
        return None

    # ------------------------------------------------------------ diagnoses
    def save_diagnosis(self, record: DiagnosisRecord, per_sample: pa.Table) -> None:
        rel = f"diagnoses/{record.id}.parquet"
        digest, size = self.files.write_parquet(per_sample, rel, {"kind": "diagnosis", "run_id": record.run_id})
        try:
            with self._tx() as cur:
                self._hold(cur, "run", record.run_id)
                cur.execute("INSERT INTO diagnoses VALUES (%s,%s,%s,%s,%s)",
                            (record.id, record.run_id, record.created_at, record.job_id, record.payload))
                cur.execute(_FILE_ROW, (rel, digest, size))
        except BaseException:
            self.files.delete(rel)
            raise

    # ------------------------------------------------------------ suggestion sets
    def save_suggestion_set(self, record: SuggestionSetRecord, candidates: pa.Table) -> None:
        rel = f"suggestions/{record.id}.parquet"
        digest, size = self.files.write_parquet(candidates, rel, {"kind": "suggestion_set", "run_id": record.run_id})
        try:
            with self._tx() as cur:
                self._hold(cur, "run", record.run_id)
                self._hold(cur, "pool", record.pool_id)
                cur.execute(*suggestion_set_insert(record, "%s"))
                cur.execute(_FILE_ROW, (rel, digest, size))
                with cur.copy("COPY suggested (set_id, run_id, pool_id, sample_id) FROM STDIN") as copy:
                    for sid in candidates.column("sample_id").to_pylist():
                        copy.write_row((record.id, record.run_id, record.pool_id, sid))
        except BaseException:
            self.files.delete(rel)
            raise

    # ------------------------------------------------------------ jobs (plain records; the queue is in the mixin)
    def prune_jobs(self, finished_before: float) -> int:
        with self._tx() as cur:
            cur.execute(self._prune_jobs_statement("%s"), (finished_before,))
            return int(cur.rowcount)

    def save_job(self, job: JobRecord) -> None:
        with self._tx() as cur:
            cur.execute(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                        "ON CONFLICT (id) DO UPDATE SET state=EXCLUDED.state, fraction_done=EXCLUDED.fraction_done, "
                        "stage=EXCLUDED.stage, result_id=EXCLUDED.result_id, error=EXCLUDED.error, "
                        "updated_at=EXCLUDED.updated_at, pool_id=EXCLUDED.pool_id, started_at=EXCLUDED.started_at",
                        (job.id, job.kind, job.run_id, job.state, job.fraction_done, job.stage, job.result_id,
                         job.error, job.created_at, job.updated_at, job.pool_id, job.started_at))

    # ------------------------------------------------------------ store copies (transfer.py)
    @property
    def file_root(self) -> FileRoot:
        return self.files

    @contextmanager
    def catalog_snapshot(self) -> Iterator["CatalogReader"]:
        """Reads of one REPEATABLE READ, READ ONLY transaction: the catalog as of its first
        query, whatever replicas write meanwhile; ``rows`` streams through server-side cursors."""
        from .transfer import CatalogReader
        try:
            with self._pool.connection() as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                names = iter(range(1 << 30))

                def rows(sql: str) -> Iterator[tuple]:
                    with conn.cursor(name=f"copy_{next(names)}") as cur:
                        cur.itersize = 10_000
                        cur.execute(sql)
                        yield from cur

                yield CatalogReader(lambda sql, args=(): conn.execute(sql, args).fetchall(), rows,
                                    lambda table: [c.name for c in conn.execute(f"SELECT * FROM {table} LIMIT 0")
                                                   .description])
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the PostgreSQL catalog is unavailable ({exc})") from None

    def catalog_columns(self, table: str) -> list[str]:
        with self._tx() as cur:
            cur.execute(f"SELECT * FROM {table} LIMIT 0")
            return [c.name for c in cur.description]

    @staticmethod
    def copied_index_path(pool_id: str, source_path: str) -> str:
        return source_path          # any name: the pool row names it

    def load_catalog(self, tables, check: CopyCheck = empty_destination) -> None:
        """Rows copied from another store, (table, columns, rows) each, in one transaction that
        first locks the tables against other writers and runs the copy's ``check`` of this store
        again (by default: every table still empty)."""
        with self._tx() as cur:
            cur.execute(f"LOCK TABLE {', '.join(COPIED_TABLES)} IN SHARE ROW EXCLUSIVE MODE")
            check(lambda sql, args: cur.execute(sql, args).fetchall(), self.PLACEHOLDER)
            for table, columns, rows in tables:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

    # ------------------------------------------------------------ housekeeping
    def check(self) -> "CheckReport":
        """Verify every data file the catalog names, without changing anything: present, the
        SHA-256 recorded at write, Parquet pages readable; and that every batch, diagnosis,
        suggestion set and pool index has its file row. Files under the root that no row names
        are notes, not damage: a replica may be between writing a file and committing it."""
        from .maintenance import CheckReport
        report = CheckReport()
        recorded = dict(self._query("SELECT path, sha256 FROM files"))
        named = [r[0] for r in self._query("SELECT file FROM batches")]
        named += [f"diagnoses/{r[0]}.parquet" for r in self._query("SELECT id FROM diagnoses")]
        named += [f"suggestions/{r[0]}.parquet" for r in self._query("SELECT id FROM suggestion_sets")]
        named += [r[0] for r in self._query("SELECT index_file FROM pools WHERE index_file <> ''")]
        for rel in sorted(set(named) - set(recorded)):
            report.problems.append(f"{rel}: the catalog names it but has no file row (no hash) for it")
        for rel, digest in sorted(recorded.items()):
            report.files_checked += 1
            try:
                actual = self.files.sha256(rel)
            except (FileNotFoundError, OSError) as exc:
                report.problems.append(f"{rel}: missing or unreadable ({type(exc).__name__})")
                continue
            if digest and actual != digest:
                report.problems.append(f"{rel}: SHA-256 differs from the one recorded at write")
            elif rel.endswith(".parquet"):
                try:
                    self.files.read_parquet(rel, rel)
                except DataLoss as exc:
                    report.problems.append(f"{rel}: {exc}")
            if not digest:
                report.notes.append(f"{rel}: no hash recorded (written before hashes were kept)")
        stray = [rel for rel in self.files.listing() if rel not in recorded]
        if stray:
            report.notes.append(f"{len(stray)} file(s) under the file root that no catalog row names (a write "
                                f"in flight, or one whose commit failed), e.g. {stray[0]}")
        return report

    def size_bytes(self) -> int:
        """Bytes of the data files the catalog names (the database's own size is PostgreSQL's to report)."""
        return int(self._query("SELECT COALESCE(SUM(bytes), 0) FROM files")[0][0])

    def close(self) -> None:
        self._pool.close()
