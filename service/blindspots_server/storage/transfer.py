"""Copying a whole store into another, empty one, or some of its projects into a store that lacks
them.

What it is for:

- moving from the embedded store to PostgreSQL when one server is no longer enough
  (``blindspots store copy postgresql://u@db/bs --to-files /mnt/shared --data-dir ./blindspots-data``);
- a PostgreSQL store's backup, as a data directory that a server, ``store check`` and
  ``store recover`` open like any other (``blindspots store backup DEST --store postgresql://...
  --files ROOT``), and its restore (``store copy`` the other way);
- moving a PostgreSQL store to another database or file root (an object store, say).

Safe while servers write to the source: its catalog is read in one snapshot (a read
transaction: SQLite's WAL snapshot, PostgreSQL's REPEATABLE READ), and the files that snapshot
names do not change once named, so the copy holds exactly what the source held at that moment.
An embedded source is read through a read-only connection, never opened as a store (that would
tidy up under its server). A file deleted by a deletion racing the copy fails the copy (run it
again).

Nothing half-written: the destination must hold nothing; every file is copied first, each
checked against the SHA-256 its catalog recorded at write (damage stops the copy and names the
file), then the catalog rows go in one transaction. A copy that fails removes the files it wrote;
one killed between the two leaves files no catalog row names, which the embedded store moves to
quarantine/ when it opens and ``store check`` on PostgreSQL lists as stray.

One project's data alone (``projects``, `store copy DEST --project P`): its runs and pools with
their rows, diagnoses, jobs, labels, pool indexes and suggestion sets (Suggest keeps a set's run
and pool in one project). For handing a project over, or splitting it into a store of its own.
Such a copy may also go into a store that holds other projects: a PostgreSQL store with its
servers running (writers wait while the rows go in, in one transaction; the replicas see the
project at once), or a data directory that no server has open (its owner lock, :mod:`.owner`,
refuses one that a server has). It must hold nothing of the projects copied, no run or pool of
theirs and none of the ids or files the copy brings, checked before any file is copied and again
in that transaction. A whole store goes into an empty one only.

Jobs still pending or running in the snapshot are copied as failed: the destination has no
process running them. A pool index keeps its bytes; its name follows the destination's scheme.
An index whose bytes no longer match the snapshot (the embedded store rewrites it in place when a
pool grows; or damage) is left out, as the server treats an unusable index: it is derived from
the pool's rows and built again when next needed. Files being deleted (``deleting``)
are left behind.
"""
from __future__ import annotations

import shutil
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from .base import DataLoss
from .embedded import index_path
from .file_root import FileRoot
from .maintenance import CATALOG, read_only_catalog
from .sql_catalog import COPIED_TABLES, empty_destination, projects_absent

_UNFINISHED = ("PENDING", "RUNNING")
_COPIED_JOB_ERROR = "the store was copied before the job finished; start it again"
_FETCH = 10_000


@dataclass
class CopyReport:
    runs: int = 0
    pools: int = 0
    rows: int = 0               # sample ids of runs and pools
    files: int = 0
    bytes: int = 0
    labels: int = 0
    jobs_failed: int = 0        # pending or running in the snapshot, failed in the copy
    indexes_left_out: list = field(default_factory=list)   # pools whose index changed since the snapshot


class CatalogReader:
    """Reads of one consistent snapshot of a catalog: ``query`` (all rows), ``rows`` (streamed)
    and ``columns`` (a table's column names), with the driver's parameter marker."""

    def __init__(self, query: Callable[[str, tuple], list[tuple]],
                 rows: Callable[[str], Iterator[tuple]], columns: Callable[[str], list[str]]):
        self.query, self.rows, self.columns = query, rows, columns


@contextmanager
def sqlite_snapshot(root: Path) -> Iterator[CatalogReader]:
    """A read transaction on an embedded catalog through a read-only connection: a server may be
    writing to it (WAL: the snapshot starts at the first read and holds until the end)."""
    catalog = root / CATALOG
    if not catalog.exists():
        raise ValueError(f"{root} holds no catalog ({CATALOG}): not a blindspots data directory")
    try:
        db = read_only_catalog(catalog, isolation_level=None, timeout=30)
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"cannot read the catalog of {root}: {exc}") from None
    try:
        db.execute("BEGIN")
        db.execute("SELECT COUNT(*) FROM runs").fetchone()

        def rows(sql: str) -> Iterator[tuple]:
            cur = db.execute(sql)
            while batch := cur.fetchmany(_FETCH):
                yield from batch

        yield CatalogReader(lambda sql, args=(): db.execute(sql, args).fetchall(), rows,
                            lambda table: [r[1] for r in db.execute(f"PRAGMA table_info({table})")])
    finally:
        db.close()


def copy_between(source: str, source_files: Optional[str], dest: str, dest_files: Optional[str],
                 progress: Optional[Callable[[str], None]] = None,
                 projects: Optional[Iterable[str]] = None) -> CopyReport:
    """Copy the store at ``source`` (a data directory, or a postgresql:// URI with its file root
    ``source_files``) into the empty store at ``dest`` (likewise, with ``dest_files``); only the
    ``projects`` named, if any."""
    from .registry import open_store
    fresh = None                # a new or empty data directory: a failed copy leaves it so
    if "://" not in dest or dest.startswith("file://"):
        folder = Path(dest.removeprefix("file://"))
        if not (folder.exists() and any(folder.iterdir())):
            fresh = folder
        elif projects is None:
            raise ValueError(f"the destination {dest} is not empty: a whole store goes into a new data directory "
                             "or an empty database (some projects, --project, also into a store holding others); "
                             "nothing was written")
    # A data directory that a server has open is refused here (StoreUnusable), before it is tidied.
    target = open_store(dest, files=dest_files)
    try:
        if "://" in source and not source.startswith("file://"):
            origin = open_store(source, files=source_files)
            try:
                with origin.catalog_snapshot() as snapshot:
                    return copy_store(snapshot, origin.file_root, target, progress, projects)
            finally:
                origin.close()
        root = Path(source.removeprefix("file://"))
        with sqlite_snapshot(root) as snapshot:
            return copy_store(snapshot, FileRoot(root), target, progress, projects)
    except BaseException:
        if fresh is not None:          # it was new or empty: leave it so, and a rerun can use it
            target.close()
            for child in list(fresh.iterdir()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    finally:
        target.close()


def copy_store(source: CatalogReader, source_files: FileRoot, dest, progress: Optional[Callable[[str], None]] = None,
               projects: Optional[Iterable[str]] = None) -> CopyReport:
    """Copy the snapshot ``source`` (files under ``source_files``) into the empty store ``dest``
    (an EmbeddedStore or PostgresStore: ``file_root``, ``catalog_columns``, ``copied_index_path``,
    ``check_copy_destination``, ``load_catalog``, ``recorded_files``); only the ``projects`` named,
    if any, and then ``dest`` may hold other projects. Raises ValueError if ``dest`` holds anything
    (with ``projects``: anything of theirs, or any id or file the copy brings), DataLoss for a
    damaged or missing source file; in both cases the destination is left as it was."""
    say = progress or (lambda _: None)
    keep, check = None, empty_destination
    if projects is None:
        dest.check_copy_destination(check)
    else:
        projects = list(projects)
        keep = _Selection(source, projects)
    recorded = dict(source.query("SELECT path, sha256 FROM files")) if source.columns("files") else {}
    named, index_of = _named_files(source, recorded, dest, keep)
    if keep is not None:
        check = projects_absent(projects, keep.ids(source), named.values())
        dest.check_copy_destination(check)
    copied: dict[str, tuple[str, int]] = {}
    report = CopyReport()
    index_files = {rel: pool_id for pool_id, rel in index_of.items()}
    try:
        for n, (src_rel, dst_rel) in enumerate(sorted(named.items())):
            try:
                copied[dst_rel] = dest.file_root.copy_from(source_files, src_rel, dst_rel,
                                                           recorded.get(src_rel) or "")
            except DataLoss:
                if dst_rel not in index_files:
                    raise
                # The embedded store rewrites a pool's index in place, so a rebuild since the snapshot
                # reads as damage; either way the index is derived data: the copy goes without it.
                del index_of[index_files[dst_rel]]
                report.indexes_left_out.append(index_files[dst_rel])
            if (n + 1) % 500 == 0:
                say(f"copied {n + 1} of {len(named)} files")
        say(f"copied {len(copied)} files; writing the catalog")
        dest.load_catalog(_tables(source, dest, index_of, copied, report, keep), check)
    except BaseException:
        # Only the files the destination's catalog does not name: a copy of the same project made
        # at the same time may have committed first, with the same paths. Where the catalog
        # cannot say, none: a file left over is stray (`store check` lists it), one removed is lost.
        try:
            ours = set(copied) - dest.recorded_files(copied)
        except Exception:
            ours = set()
        for rel in ours:
            dest.file_root.delete(rel)
        raise
    report.files = len(copied)
    report.bytes = sum(size for _, size in copied.values())
    if keep is None:
        report.runs, report.pools, report.labels, report.rows = (
            int(source.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ("runs", "pools", "labels", "sample_ids"))
    else:
        report.runs, report.pools = len(keep.runs), len(keep.pools)
        report.labels, report.rows = keep.copied["labels"], keep.copied["sample_ids"]
    return report


class _Selection:
    """Which rows of each table a copy of some projects takes: those of their runs and pools, the
    jobs of those, and the suggestion sets (with their picks) of a copied run and pool.
    The big tables (sample ids, labels) are filtered as they stream; ``copied`` counts their rows."""

    def __init__(self, source: CatalogReader, projects: Iterable[str]):
        wanted = set(projects)
        self.runs = {i for i, p in source.query("SELECT id, project FROM runs") if p in wanted}
        self.pools = {i for i, p in source.query("SELECT id, project FROM pools") if p in wanted}
        if not (self.runs or self.pools):       # a misspelt name must not make an empty copy
            raise ValueError(f"no run or pool is in project {', '.join(sorted(wanted))}; nothing was copied")
        self.sets = {i for i, r, p in source.query("SELECT id, run_id, pool_id FROM suggestion_sets")
                     if r in self.runs and p in self.pools}
        self.copied = {"labels": 0, "sample_ids": 0}

    def ids(self, source: CatalogReader) -> dict[str, set]:
        """table -> the ids of its rows that the copy brings (those a destination must not have)."""
        return {"runs": self.runs, "pools": self.pools, "suggestion_sets": self.sets,
                "diagnoses": {i for i, run_id in source.query("SELECT id, run_id FROM diagnoses") if run_id in self.runs},
                "jobs": {i for i, run_id, pool_id in source.query("SELECT id, run_id, pool_id FROM jobs")
                         if run_id in self.runs or pool_id in self.pools}}

    def owned(self, target: str, target_id: str) -> bool:
        return target_id in (self.runs if target == "run" else self.pools)

    def rows(self, table: str, columns: list[str], rows: Iterable[tuple]) -> Iterator[tuple]:
        """The rows of ``table`` (with ``columns``) the copy takes."""
        col = {c: i for i, c in enumerate(columns)}
        if table in ("runs", "pools", "suggestion_sets"):
            ids = {"runs": self.runs, "pools": self.pools, "suggestion_sets": self.sets}[table]
            take = lambda r: r[col["id"]] in ids                                     # noqa: E731
        elif table in ("batches", "sample_ids", "labels"):
            take = lambda r: self.owned(r[col["target"]], r[col["target_id"]])       # noqa: E731
        elif table == "diagnoses":
            take = lambda r: r[col["run_id"]] in self.runs                            # noqa: E731
        elif table == "jobs":                     # a diagnosis names its run; an index build its pool
            take = lambda r: r[col["run_id"]] in self.runs or r[col["pool_id"]] in self.pools  # noqa: E731
        elif table == "suggested":
            take = lambda r: r[col["set_id"]] in self.sets                            # noqa: E731
        else:
            raise ValueError(f"no rule for copying part of the {table} table")
        for row in rows:
            if take(row):
                if table in self.copied:
                    self.copied[table] += 1
                yield row


def _source_indexes(source: CatalogReader, recorded: dict[str, str]) -> dict[str, str]:
    """pool id -> its current index file in the source: the pool row names it (PostgreSQL), or it
    has the one fixed name (embedded) and a file row (no row: never built)."""
    if "index_file" in source.columns("pools"):
        return dict(source.query("SELECT id, index_file FROM pools WHERE index_file <> ''"))
    fixed = {pool_id: index_path(pool_id) for (pool_id,) in source.query("SELECT id FROM pools")}
    return {pool_id: rel for pool_id, rel in fixed.items() if rel in recorded}


def _named_files(source: CatalogReader, recorded: dict[str, str], dest, keep: Optional[_Selection] = None
                 ) -> tuple[dict[str, str], dict[str, str]]:
    """Every file the snapshot names (source path -> destination path), and each built pool
    index's destination path by pool id; those of the selected projects only, with ``keep``."""
    everything = keep is None
    named = {rel: rel for target, target_id, rel in source.query("SELECT target, target_id, file FROM batches")
             if everything or keep.owned(target, target_id)}
    named.update((f"diagnoses/{i}.parquet",) * 2 for i, run_id in source.query("SELECT id, run_id FROM diagnoses")
                 if everything or run_id in keep.runs)
    named.update((f"suggestions/{i}.parquet",) * 2 for (i,) in source.query("SELECT id FROM suggestion_sets")
                 if everything or i in keep.sets)
    index_of = {}
    for pool_id, rel in _source_indexes(source, recorded).items():
        if everything or pool_id in keep.pools:
            named[rel] = index_of[pool_id] = dest.copied_index_path(pool_id, rel)
    return named, index_of


def _tables(source: CatalogReader, dest, index_of: dict[str, str], copied: dict[str, tuple[str, int]],
            report: CopyReport, keep: Optional[_Selection] = None) -> Iterable[tuple[str, list[str], Iterable[tuple]]]:
    """(table, destination columns, rows) for each table: the columns both catalogs have, rows
    streamed from the snapshot; the file rows are those of the copies, and a pool row names its
    index file where the destination keeps that name in the row."""
    for table in COPIED_TABLES:
        ours, theirs = dest.catalog_columns(table), source.columns(table)
        shared = [c for c in ours if c in theirs and c != "index_file"]
        if not shared and table != "files":
            continue                    # a catalog from before the table existed: nothing to copy
        select = f"SELECT {', '.join(shared)} FROM {table}"
        # With a selection, the rows it takes (each table's filter needs its id columns, which both
        # catalogs have: they are in ``shared``).
        picked = (lambda rows: keep.rows(table, shared, rows)) if keep is not None else (lambda rows: rows)
        if table == "files":
            yield table, ["path", "sha256", "bytes"], ((rel, digest, size) for rel, (digest, size) in copied.items())
        elif table == "pools":
            yield table, shared + (["index_file"] if "index_file" in ours else []), (
                _pool_row(r, shared, index_of, "index_file" in ours) for r in picked(source.rows(select)))
        elif table == "jobs":
            yield table, shared, (_finished(r, shared, report) for r in picked(source.rows(select)))
        else:
            yield table, shared, picked(source.rows(select))


def _pool_row(row: tuple, columns: list[str], index_of: dict[str, str], names_index: bool) -> tuple:
    """A pool's row as the destination keeps it: its index file named where the row names it, and
    no index at all where the copy has none (never built, or left out)."""
    pool_id = row[columns.index("id")]
    if pool_id not in index_of:
        none = {"index_kind": "", "index_rows": 0, "index_description": ""}
        row = tuple(none.get(c, v) for c, v in zip(columns, row))
    return (*row, index_of.get(pool_id, "")) if names_index else row


def _finished(row: tuple, columns: list[str], report: CopyReport) -> tuple:
    state = columns.index("state")
    if row[state] not in _UNFINISHED:
        return row
    report.jobs_failed += 1
    fixed = {"state": "FAILED", "stage": "failed", "error": _COPIED_JOB_ERROR}
    return tuple(fixed.get(c, v) for c, v in zip(columns, row))
