"""What the two SQL catalogs (embedded SQLite, PostgreSQL) read alike, written once: runs,
pools, diagnoses, suggestion sets, labels, and a run's or pool's rows from its batch files.

Writes stay with each store (transactions, locking and file handling differ)."""
from __future__ import annotations

import dataclasses
import json
from typing import Callable, Optional

import pyarrow as pa

from .base import (Conflict, DataLoss, DeleteOutcome, DiagnosisRecord, JobBacklog, JobRecord, LabelRecord, NotFound,
                   PoolRecord, RowFile, RunRecord, SuggestionSetRecord)
from .row_tables import ReadProgress, cached_rows, read_target_row_data, read_target_rows
from .rows import RowData

RUN_COLUMNS = ("id, name, project, model_name, model_version, dataset_name, class_names, embedding_dim, "
               "created_at, num_rows, metadata_schema, request_id")
DIAGNOSIS_COLUMNS = "id, run_id, created_at, job_id, payload"
JOB_COLUMNS = ("id, kind, run_id, state, fraction_done, stage, result_id, error, created_at, updated_at, pool_id, "
               "started_at")
# ListJobs reads jobs newest first; deleting a run or pool deletes its jobs. Both stores, made after
# the pool_id column is added to older catalogs.
JOB_INDEXES = ("CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at)",
               "CREATE INDEX IF NOT EXISTS jobs_run ON jobs (run_id)",
               "CREATE INDEX IF NOT EXISTS jobs_pool ON jobs (pool_id)",
               # the unfinished jobs (the backlog gauges) and the finished ones past retention
               "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, updated_at)")
SUGGESTION_SET_COLUMNS = ("id, run_id, pool_id, diagnosis_id, strategy, budget, num_candidates, created_at, name, "
                          "request_id")
# The request ids that make CreateRun, CreatePool and Suggest safe to repeat: a column of each
# table (added to catalogs made before it; '' where none was given), unique per project for runs
# and pools and per run and pool for suggestion sets. Both stores.
REQUEST_ID_TABLES = ("runs", "pools", "suggestion_sets")
REQUEST_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_request ON runs (project, request_id) WHERE request_id <> ''",
    "CREATE UNIQUE INDEX IF NOT EXISTS pools_request ON pools (project, request_id) WHERE request_id <> ''",
    "CREATE UNIQUE INDEX IF NOT EXISTS suggestion_sets_request ON suggestion_sets (run_id, pool_id, request_id) "
    "WHERE request_id <> ''")
# When rows were last added to a run or pool (0: none since the column was added to an older catalog):
# run retention counts an ingest as use. Not part of the records. Both stores.
INGESTED_AT_TABLES = ("runs", "pools")
POOL_COLUMNS = ("id, name, project, embedding_dim, num_classes, created_at, num_rows, metadata_schema, "
                "index_kind, index_rows, index_description, request_id")


# Files a deletion committed and has still to remove (Store.delete): a store that stops between
# the commit and the last removal finishes them when it opens again. Both catalogs.
DELETING_SCHEMA = "CREATE TABLE IF NOT EXISTS deleting (path TEXT PRIMARY KEY);"
# What a store copy (transfer.py) carries: every table but ``deleting`` (files on their way out).
COPIED_TABLES = ("runs", "pools", "batches", "sample_ids", "diagnoses", "jobs", "suggestion_sets", "suggested",
                 "labels", "files")
_CHUNK = 500


def owned_files(query: Callable[[str, tuple], list[tuple]], p: str, target: str, target_ids: list[str],
                index_files: Callable[[list[str]], dict[str, list[str]]]) -> dict[str, dict[str, int]]:
    """The data files each run or pool owns, with their recorded sizes (0 where none was
    recorded): its row files, a pool's index files (``index_files(pool_ids)``: each store names
    its own), a run's diagnoses' files and those of the suggestion sets made for the run or from
    the pool. A few look-ups per 500 owners, each through an index."""
    key = "run_id" if target == "run" else "pool_id"
    out: dict[str, dict[str, int]] = {}
    owners = list(dict.fromkeys(target_ids))
    for start in range(0, len(owners), _CHUNK):
        chunk = tuple(owners[start:start + _CHUNK])
        marks = ",".join([p] * len(chunk))
        named: dict[str, set[str]] = {t: set() for t in chunk}
        for owner, path in query(f"SELECT target_id, file FROM batches WHERE target={p} AND target_id IN ({marks})",
                                 (target, *chunk)):
            named[owner].add(path)
        if target == "run":
            for owner, diagnosis_id in query(f"SELECT run_id, id FROM diagnoses WHERE run_id IN ({marks})", chunk):
                named[owner].add(f"diagnoses/{diagnosis_id}.parquet")
        for owner, set_id in query(f"SELECT {key}, id FROM suggestion_sets WHERE {key} IN ({marks})", chunk):
            named[owner].add(f"suggestions/{set_id}.parquet")
        indexes = index_files(list(chunk)) if target == "pool" else {}
        paths = sorted(set().union(*named.values(), *indexes.values()))
        sizes: dict[str, int] = {}
        for at in range(0, len(paths), _CHUNK):
            part = paths[at:at + _CHUNK]
            sizes.update(query(f"SELECT path, bytes FROM files WHERE path IN ({','.join([p] * len(part))})",
                               tuple(part)))
        # An index file the catalog has no file row for does not exist; every other named file does.
        for owner in chunk:
            present = named[owner] | {f for f in indexes.get(owner, []) if f in sizes}
            out[owner] = {path: int(sizes.get(path) or 0) for path in present}
    return out


def refuse_unless_empty(query: Callable[[str, tuple], list[tuple]], tables) -> None:
    """ValueError naming what ``tables`` hold, unless they hold nothing (a store copy's destination)."""
    held = [(t, int(query(f"SELECT COUNT(*) FROM {t}", ())[0][0])) for t in tables]
    held = [(t, n) for t, n in held if n]
    if held:
        raise ValueError("the destination store is not empty (" + ", ".join(f"{n} {t} row(s)" for t, n in held)
                         + "): a copy goes into a new data directory or an empty database; nothing was written")


Query = Callable[[str, tuple], list[tuple]]
# A store copy's check of its destination, run before any file is copied and again inside the
# transaction that writes the catalog rows: (query, the driver's parameter marker) -> raises
# ValueError naming what is in the way.
CopyCheck = Callable[[Query, str], None]


def empty_destination(query: Query, p: str) -> None:
    """A whole store's copy goes into a store that holds nothing."""
    refuse_unless_empty(query, COPIED_TABLES)


def _present(query: Query, p: str, table: str, column: str, values) -> list[str]:
    values, found = sorted(values), []
    for at in range(0, len(values), _CHUNK):
        part = tuple(values[at:at + _CHUNK])
        found += [v for (v,) in query(f"SELECT {column} FROM {table} WHERE {column} IN ({','.join([p] * len(part))})",
                                      part)]
    return sorted(found)


def projects_absent(projects, ids: dict[str, set], paths) -> CopyCheck:
    """Some projects' copy goes into a store that may hold other projects but none of these: no
    run or pool of theirs (a project arrives whole, never merged with one of the same name, whose
    request ids and model versions would mix), and none of the ids (``ids``: table -> the ids its
    rows bring) or file ``paths`` the copy brings (the same data copied there before)."""
    projects = sorted(set(projects))

    def check(query: Query, p: str) -> None:
        held = []
        for table in ("runs", "pools"):
            held += [f"{n} {table[:-1]}(s) of project {project!r}" for project, n in query(
                f"SELECT project, COUNT(*) FROM {table} WHERE project IN ({','.join([p] * len(projects))}) "
                "GROUP BY project ORDER BY project", tuple(projects))]
        if held:
            raise ValueError("the destination already holds " + ", ".join(held) + ": a project is copied whole "
                             "into a store that lacks it (delete it there first, or copy into a new store); "
                             "nothing was written")
        for table, column, values in [*((t, "id", v) for t, v in ids.items()), ("files", "path", paths)]:
            clash = _present(query, p, table, column, values)
            if clash:
                raise ValueError(f"the destination already has {len(clash)} {table} row(s) with the {column}s this "
                                 f"copy brings, e.g. {clash[0]!r} (copied there before?); nothing was written")
    return check


def _count(paths, prefix: str) -> int:
    return sum(1 for path in paths if path.startswith(prefix))


def deletion_plan(query: Callable[[str, tuple], list[tuple]], p: str, target: str, target_id: str,
                  force: bool, index_files: Callable[[list[str]], dict[str, list[str]]]
                  ) -> tuple[DeleteOutcome, list[str], list[tuple[str, tuple]]]:
    """What deleting a run or pool removes, read inside the caller's transaction (which holds
    the target's lock): the outcome to report, the files to remove, and the catalog statements
    (in ``p``, the driver's parameter marker) that remove its rows. ``index_files``: as for
    :func:`owned_files`. The file rows and the ``deleting`` rows are the caller's to write (each
    driver batches them its own way)."""
    tname = SqlCatalog._table_name(target)
    found = query(f"SELECT num_rows FROM {tname} WHERE id={p}", (target_id,))
    if not found:
        raise NotFound(f"{target} {target_id!r} not found")
    key = "run_id" if target == "run" else "pool_id"
    if target == "run":
        busy = query(f"SELECT id, state FROM jobs WHERE run_id={p} AND state IN ('PENDING', 'RUNNING') "
                     "ORDER BY created_at", (target_id,))
        if busy:
            raise Conflict(f"run {target_id!r} has a {busy[0][1].lower()} job {busy[0][0]!r}: cancel it "
                           "(CancelJob) or let it finish, then delete the run")
    labels = query(f"SELECT COUNT(*) FROM labels WHERE target={p} AND target_id={p}", (target, target_id))[0][0]
    if labels and not force:
        raise Conflict(f"{target} {target_id!r} holds {labels} label(s) from a labeling tool: export them first "
                       f"(ListLabels; `blindspots labels export --{target} {target_id}`), then delete it with force")
    sizes = owned_files(query, p, target, [target_id], index_files)[target_id]
    statements = [(f"DELETE FROM {tname} WHERE id={p}", (target_id,)),
                  (f"DELETE FROM batches WHERE target={p} AND target_id={p}", (target, target_id)),
                  (f"DELETE FROM sample_ids WHERE target={p} AND target_id={p}", (target, target_id)),
                  (f"DELETE FROM labels WHERE target={p} AND target_id={p}", (target, target_id)),
                  (f"DELETE FROM suggested WHERE {key}={p}", (target_id,)),
                  (f"DELETE FROM suggestion_sets WHERE {key}={p}", (target_id,))]
    if target == "run":
        statements += [(f"DELETE FROM diagnoses WHERE run_id={p}", (target_id,)),
                       (f"DELETE FROM jobs WHERE run_id={p}", (target_id,))]
    else:
        # Its finished index builds; one still running ends cancelled (the deletion stops it) and stays,
        # for callers that may read every project.
        statements.append((f"DELETE FROM jobs WHERE pool_id={p} AND state NOT IN ('PENDING', 'RUNNING')",
                           (target_id,)))
    outcome = DeleteOutcome(target=target, id=target_id, rows=int(found[0][0]), diagnoses=_count(sizes, "diagnoses/"),
                            suggestion_sets=_count(sizes, "suggestions/"), labels=int(labels), files=len(sizes),
                            bytes=sum(sizes.values()))
    return outcome, sorted(sizes), statements


def suggestion_set_insert(record: SuggestionSetRecord, p: str) -> tuple[str, tuple]:
    """The statement that records a suggestion set, by column name (catalogs that gained a column
    later hold it last), with the driver's parameter marker ``p``."""
    fields = dataclasses.astuple(record)
    return f"INSERT INTO suggestion_sets ({SUGGESTION_SET_COLUMNS}) VALUES ({', '.join([p] * len(fields))})", fields


def suggestion_set_deletion_plan(query: Callable[[str, tuple], list[tuple]], p: str, set_id: str
                                 ) -> tuple[DeleteOutcome, list[str], list[tuple[str, tuple]]]:
    """As :func:`deletion_plan`, for one suggestion set: its row, its picks (which later rounds
    may then pick again) and its file. ``rows`` of the outcome is the number of picks released."""
    found = query(f"SELECT num_candidates FROM suggestion_sets WHERE id={p}", (set_id,))
    if not found:
        raise NotFound(f"suggestion set {set_id!r} not found")
    rel = f"suggestions/{set_id}.parquet"
    size = query(f"SELECT bytes FROM files WHERE path={p}", (rel,))
    statements = [(f"DELETE FROM suggested WHERE set_id={p}", (set_id,)),
                  (f"DELETE FROM suggestion_sets WHERE id={p}", (set_id,))]
    outcome = DeleteOutcome(target="suggestion_set", id=set_id, rows=int(found[0][0]), diagnoses=0, suggestion_sets=1,
                            labels=0, files=1, bytes=int(size[0][0] or 0) if size else 0)
    return outcome, [rel], statements


class SqlCatalog:
    """The shared reads, over ``self._query(sql, args)``. A store gives ``PLACEHOLDER`` (its
    driver's parameter marker), ``_project_filter`` (a WHERE clause and its arguments: SQLite
    has no arrays, PostgreSQL takes one), ``_read_stored_file`` and ``_file_location`` (where
    its files live), and ``_cache`` (a RowCache)."""

    PLACEHOLDER = "?"

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    @staticmethod
    def _project_filter(projects: Optional[list[str]]) -> tuple[str, tuple]:
        raise NotImplementedError

    @staticmethod
    def _run_record(row: tuple) -> RunRecord:
        return RunRecord(id=row[0], name=row[1], project=row[2], model_name=row[3], model_version=row[4],
                         dataset_name=row[5], class_names=json.loads(row[6]), embedding_dim=row[7],
                         created_at=row[8], num_rows=row[9], metadata_schema=json.loads(row[10]), request_id=row[11])

    @staticmethod
    def _pool_record(row: tuple) -> PoolRecord:
        return PoolRecord(id=row[0], name=row[1], project=row[2], embedding_dim=row[3], num_classes=row[4],
                          created_at=row[5], num_rows=row[6], metadata_schema=json.loads(row[7]),
                          index_kind=row[8], index_rows=row[9], index_description=row[10], request_id=row[11])

    def get_run(self, run_id: str) -> RunRecord:
        return self._run_record(self._one("runs", RUN_COLUMNS, run_id, "run"))

    def find_created(self, target: str, project: str, request_id: str) -> Optional[RunRecord | PoolRecord]:
        if not request_id:
            raise ValueError("find_created needs a request_id")
        columns, record = (RUN_COLUMNS, self._run_record) if target == "run" else (POOL_COLUMNS, self._pool_record)
        p = self.PLACEHOLDER
        rows = self._query(f"SELECT {columns} FROM {self._table_name(target)} WHERE project={p} AND request_id={p}",
                           (project, request_id))
        return record(rows[0]) if rows else None

    def list_runs(self, projects: Optional[list[str]], limit: int, offset: int) -> list[RunRecord]:
        return [self._run_record(r) for r in self._listed("runs", RUN_COLUMNS, projects, limit, offset)]

    def get_pool(self, pool_id: str) -> PoolRecord:
        return self._pool_record(self._one("pools", POOL_COLUMNS, pool_id, "pool"))

    def list_jobs(self, projects: Optional[list[str]], states: list[str], kind: str, run_id: str, pool_id: str,
                  limit: int, offset: int) -> list[JobRecord]:
        p = self.PLACEHOLDER
        where, args = [], []
        if states:
            where.append(f"state IN ({','.join([p] * len(states))})")
            args += states
        if kind:
            where.append(f"kind = {p}")
            args.append(kind)
        if run_id:
            where.append(f"run_id = {p}")
            args.append(run_id)
        if pool_id:
            where.append(f"pool_id = {p}")
            args.append(pool_id)
        if projects is not None:
            of_projects, project_args = self._project_filter(projects)
            where.append(f"(run_id IN (SELECT id FROM runs {of_projects}) OR pool_id IN (SELECT id FROM pools "
                         f"{of_projects}))")
            args += [*project_args, *project_args]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs {clause} ORDER BY created_at DESC, id DESC "
                           f"LIMIT {p} OFFSET {p}", (*args, limit, offset))
        return [JobRecord(*row) for row in rows]

    def job_backlog(self) -> JobBacklog:
        counts = {state: (int(n), oldest) for state, n, oldest in self._query(
            "SELECT state, COUNT(*), MIN(created_at) FROM jobs WHERE state IN ('PENDING', 'RUNNING') GROUP BY state")}
        pending, oldest = counts.get("PENDING", (0, None))
        return JobBacklog(pending=pending, running=counts.get("RUNNING", (0, None))[0],
                          oldest_pending_at=None if oldest is None else float(oldest))

    @staticmethod
    def _prune_jobs_statement(p: str) -> str:
        return f"DELETE FROM jobs WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') AND updated_at < {p}"

    def last_used(self, ids: list[str], target: str) -> dict[str, float]:
        p, out = self.PLACEHOLDER, {}
        tname, key = self._table_name(target), f"{target}_id"
        # A run is used by its diagnoses and the suggestion sets made for it; a pool by the sets made
        # from it. Each through its own index on the run_id / pool_id column.
        tables = ("diagnoses", "suggestion_sets") if target == "run" else ("suggestion_sets",)
        for start in range(0, len(ids), _CHUNK):
            chunk = tuple(ids[start:start + _CHUNK])
            marks = ",".join([p] * len(chunk))
            for target_id, created, ingested in self._query(
                    f"SELECT id, created_at, ingested_at FROM {tname} WHERE id IN ({marks})", chunk):
                out[target_id] = max(float(created), float(ingested))
            for table in tables:
                for target_id, newest in self._query(f"SELECT {key}, MAX(created_at) FROM {table} "
                                                     f"WHERE {key} IN ({marks}) GROUP BY {key}", chunk):
                    if target_id in out:
                        out[target_id] = max(out[target_id], float(newest))
        return out

    def stale(self, target: str, unused_before: float) -> list:
        p, tname = self.PLACEHOLDER, self._table_name(target)
        columns, record = (RUN_COLUMNS, self._run_record) if target == "run" else (POOL_COLUMNS, self._pool_record)
        group = "n.project = r.project" + (" AND n.model_name = r.model_name" if target == "run" else "")
        # Created before the cutoff and not the newest of its group (unqualified columns of the outer
        # query are the target's); then unused since, as last_used says.
        found = [record(row) for row in self._query(
            f"SELECT {columns} FROM {tname} r WHERE created_at < {p} "
            f"AND EXISTS (SELECT 1 FROM {tname} n WHERE {group} "
            "AND (n.created_at > r.created_at OR (n.created_at = r.created_at AND n.id > r.id))) "
            "ORDER BY created_at, id", (unused_before,))]
        used = self.last_used([r.id for r in found], target)
        return [r for r in found if r.id in used and used[r.id] < unused_before]

    def list_pools(self, projects: Optional[list[str]], limit: int, offset: int) -> list[PoolRecord]:
        return [self._pool_record(r) for r in self._listed("pools", POOL_COLUMNS, projects, limit, offset)]

    @staticmethod
    def _diagnosis_record(row: tuple) -> DiagnosisRecord:
        return DiagnosisRecord(id=row[0], run_id=row[1], created_at=row[2], job_id=row[3], payload=bytes(row[4]))

    def get_diagnosis(self, diagnosis_id: str) -> DiagnosisRecord:
        return self._diagnosis_record(self._one("diagnoses", DIAGNOSIS_COLUMNS, diagnosis_id, "diagnosis"))

    def latest_diagnosis(self, run_id: str) -> DiagnosisRecord:
        rows = self._query(f"SELECT {DIAGNOSIS_COLUMNS} FROM diagnoses WHERE run_id={self.PLACEHOLDER} "
                           "ORDER BY created_at DESC, id DESC LIMIT 1", (run_id,))
        if not rows:
            raise NotFound(f"run {run_id!r} has no diagnosis yet")
        return self._diagnosis_record(rows[0])

    def list_diagnoses(self, run_id: str) -> list[DiagnosisRecord]:
        return [self._diagnosis_record(r) for r in self._query(
            f"SELECT {DIAGNOSIS_COLUMNS} FROM diagnoses WHERE run_id={self.PLACEHOLDER} ORDER BY created_at",
            (run_id,))]

    def recent_diagnoses(self, limit: int) -> list[tuple[str, str, float]]:
        # Walks the created_at index from the newest, keeping a diagnosis when no later one of
        # its run exists (the same order as latest_diagnosis: created_at, then id).
        return [(r[0], r[1], float(r[2])) for r in self._query(
            "SELECT d.run_id, d.id, d.created_at FROM diagnoses d WHERE NOT EXISTS (SELECT 1 FROM diagnoses n "
            "WHERE n.run_id = d.run_id AND (n.created_at > d.created_at OR (n.created_at = d.created_at "
            f"AND n.id > d.id))) ORDER BY d.created_at DESC, d.id DESC LIMIT {self.PLACEHOLDER}", (int(limit),))]

    def diagnosis_rows(self, diagnosis_id: str) -> pa.Table:
        self.get_diagnosis(diagnosis_id)             # NotFound for an unknown id
        return self._read_unless_deleted(f"diagnoses/{diagnosis_id}.parquet", f"diagnosis {diagnosis_id!r}", None,
                                         "diagnoses", diagnosis_id)

    def stored_bytes(self, target: str, target_ids: list[str]) -> dict[str, int]:
        """Bytes of the data files each run or pool owns, as recorded at write: what deleting it
        would free (row files, a pool's index, a run's diagnoses, the suggestion sets of either;
        a listing's page takes a few queries, not a few per owner)."""
        self._table_name(target)
        owned = owned_files(self._query, self.PLACEHOLDER, target, target_ids,
                            lambda pool_ids: self._index_files(self._query, pool_ids))
        return {t: sum(owned[t].values()) for t in target_ids}

    # ------------------------------------------------------------ suggestion sets
    def suggested_ids(self, run_id: str, pool_id: str) -> set[str]:
        p = self.PLACEHOLDER
        return {r[0] for r in self._query(f"SELECT sample_id FROM suggested WHERE run_id={p} AND pool_id={p}",
                                          (run_id, pool_id))}

    def get_suggestion_set(self, set_id: str) -> SuggestionSetRecord:
        return SuggestionSetRecord(*self._one("suggestion_sets", SUGGESTION_SET_COLUMNS, set_id, "suggestion set"))

    def read_suggestion_set(self, set_id: str, record: Optional[SuggestionSetRecord] = None
                            ) -> tuple[SuggestionSetRecord, pa.Table]:
        if record is not None and record.id != set_id:
            raise ValueError(f"read_suggestion_set: the record given is set {record.id!r}, not {set_id!r}")
        return (record or self.get_suggestion_set(set_id), self._read_unless_deleted(
            f"suggestions/{set_id}.parquet", f"suggestion set {set_id!r}", None, "suggestion_sets", set_id))

    def find_suggestion_set(self, run_id: str, pool_id: str, request_id: str) -> Optional[SuggestionSetRecord]:
        if not request_id:
            raise ValueError("find_suggestion_set needs a request_id")
        p = self.PLACEHOLDER
        rows = self._query(f"SELECT {SUGGESTION_SET_COLUMNS} FROM suggestion_sets WHERE run_id={p} AND pool_id={p} "
                           f"AND request_id={p}", (run_id, pool_id, request_id))
        return SuggestionSetRecord(*rows[0]) if rows else None

    def list_suggestion_sets(self, run_id: str, pool_id: str, limit: int, offset: int) -> list[SuggestionSetRecord]:
        where = [(c, v) for c, v in (("run_id", run_id), ("pool_id", pool_id)) if v]
        if not where:
            raise ValueError("list_suggestion_sets needs a run_id or a pool_id")
        p = self.PLACEHOLDER
        return [SuggestionSetRecord(*row) for row in self._query(
            f"SELECT {SUGGESTION_SET_COLUMNS} FROM suggestion_sets WHERE "
            + " AND ".join(f"{c}={p}" for c, _ in where) + f" ORDER BY created_at, id LIMIT {p} OFFSET {p}",
            (*(v for _, v in where), int(limit), int(offset)))]

    # ------------------------------------------------------------ labels (written by each store's labels mixin)
    def read_labels(self, target: str, target_id: str) -> list[LabelRecord]:
        self._table_name(target)
        p = self.PLACEHOLDER
        rows = self._query(f"SELECT sample_id, label, source, labeled_at FROM labels WHERE target={p} AND "
                           f"target_id={p} ORDER BY labeled_at, sample_id", (target, target_id))
        return [LabelRecord(*r) for r in rows]

    def labeled_ids(self, target: str, target_id: str) -> set[str]:
        self._table_name(target)
        p = self.PLACEHOLDER
        return {r[0] for r in self._query(f"SELECT sample_id FROM labels WHERE target={p} AND target_id={p}",
                                          (target, target_id))}

    # ------------------------------------------------------------ rows
    @staticmethod
    def _table_name(target: str) -> str:
        if target not in ("run", "pool"):
            raise ValueError(f"target must be 'run' or 'pool', not {target!r}")
        return target + "s"

    def _read_stored_file(self, rel: str, what: str, columns: Optional[list[str]]):
        """A stored Parquet file (a batch, a suggestion set) by its path under the store's file root."""
        raise NotImplementedError

    def _row_source(self, target: str, target_id: str):
        """(row count, metadata schema, a function listing the batch files, a function reading one)."""
        p = self.PLACEHOLDER
        rows = self._query(f"SELECT num_rows, metadata_schema FROM {self._table_name(target)} WHERE id={p}",
                           (target_id,))
        if not rows:
            raise NotFound(f"{target} {target_id!r} not found")
        what = f"{target} {target_id!r}"

        def files() -> list[str]:
            return [f for (f,) in self._query(f"SELECT file FROM batches WHERE target={p} AND target_id={p} "
                                              "ORDER BY seq", (target, target_id))]

        def read(f: str, cols):
            return self._read_unless_deleted(f, what, cols, self._table_name(target), target_id)
        return rows[0][0], json.loads(rows[0][1]), files, read

    def _read_unless_deleted(self, rel: str, what: str, columns: Optional[list[str]], table: str, key: str):
        """A stored file; NotFound rather than DataLoss when the row owning it (``key`` in
        ``table``) was deleted while it was being read: a deletion, not damage."""
        try:
            return self._read_stored_file(rel, what, columns)
        except DataLoss:
            self._unless_deleted(table, key, what)
            raise

    def _file_location(self, rel: str) -> str:
        """Where a stored file can be opened by location alone (Store.row_files)."""
        raise NotImplementedError

    def check_copy_destination(self, check: CopyCheck) -> None:
        """A store copy's destination check (transfer.py), before any file is copied;
        ``load_catalog`` runs it again in the transaction that writes the rows."""
        check(self._query, self.PLACEHOLDER)

    def recorded_files(self, paths) -> set[str]:
        """Those of ``paths`` that the catalog has a file row for."""
        return set(_present(self._query, self.PLACEHOLDER, "files", "path", paths))

    def _index_files(self, query: Callable[[str, tuple], list[tuple]], pool_ids: list[str]) -> dict[str, list[str]]:
        """Where each pool's index blob may be (paths under the file root), read through ``query``
        (one look-up for all of them)."""
        raise NotImplementedError

    def read_rows(self, target: str, target_id: str, columns: Optional[list[str]] = None,
                  progress: Optional[ReadProgress] = None) -> pa.Table:
        num_rows, schema, files, read_file = self._row_source(target, target_id)

        def read() -> pa.Table:
            # Batches committed after the row count above are left out: the table matches the key.
            table = read_target_rows(read_file, files(), schema, columns, progress)
            if table.num_rows < num_rows:
                self._unless_deleted(self._table_name(target), target_id, f"{target} {target_id!r}")
            return table.slice(0, num_rows) if table.num_rows > num_rows else table

        return cached_rows(self._cache, target, target_id, num_rows, columns, read)

    def read_row_data(self, target: str, target_id: str, columns: Optional[list[str]] = None,
                      progress: Optional[ReadProgress] = None) -> RowData:
        # Batches committed after the row count are left out, as in read_rows.
        num_rows, schema, files, read_file = self._row_source(target, target_id)
        data = read_target_row_data(read_file, files(), schema, num_rows, columns, progress)
        if len(data) < num_rows:
            self._unless_deleted(self._table_name(target), target_id, f"{target} {target_id!r}")
        return data

    def _unless_deleted(self, table: str, key: str, what: str) -> None:
        """NotFound if the row ``key`` of ``table`` (a run, pool, diagnosis or suggestion set) was
        deleted while its files were read: files listed after the delete, or gone under the read."""
        if not self._query(f"SELECT 1 FROM {table} WHERE id={self.PLACEHOLDER}", (key,)):
            raise NotFound(f"{what} was deleted while it was being read") from None

    def row_files(self, target: str, target_id: str) -> list[RowFile]:
        self._row_source(target, target_id)             # NotFound for an unknown id
        p = self.PLACEHOLDER
        return [RowFile(self._file_location(f), rows) for f, rows in self._query(
            f"SELECT file, rows FROM batches WHERE target={p} AND target_id={p} ORDER BY seq", (target, target_id))]

    def _one(self, table: str, columns: str, key: str, what: str) -> tuple:
        rows = self._query(f"SELECT {columns} FROM {table} WHERE id={self.PLACEHOLDER}", (key,))
        if not rows:
            raise NotFound(f"{what} {key!r} not found")
        return rows[0]

    def _listed(self, table: str, columns: str, projects: Optional[list[str]], limit: int,
                offset: int) -> list[tuple]:
        where, args = self._project_filter(projects)
        p = self.PLACEHOLDER
        return self._query(f"SELECT {columns} FROM {table} {where} ORDER BY created_at, id LIMIT {p} OFFSET {p}",
                           (*args, limit, offset))
