"""Keeping an embedded data directory whole: open-time checks, quarantine, check, recover
(backups: :mod:`.transfer`).

The rule behind all of it: the store never deletes a file it cannot account
for. A data directory that holds data files but no usable catalog (a restore
that forgot ``catalog.sqlite``, a wrong volume mount, a damaged page) is not
opened at all: ``blindspots store check`` says what is there and
``blindspots store recover`` rebuilds the catalog from the files, each of
which carries its own catalog entry in its Parquet metadata (:mod:`.files`).
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from .base import DataLoss, PoolRecord, RunRecord, StoreUnusable, SuggestionSetRecord
from .files import file_meta, fsync_dir, read_parquet, sha256_of
from .owner import DirectoryOwner
from .rows import row_digests
from .sql_catalog import suggestion_set_insert

CATALOG = "catalog.sqlite"
QUARANTINE = "quarantine"
_HOW_OUT = ("`blindspots store check --data-dir DIR` lists what is there; `blindspots store recover "
            "--data-dir DIR` rebuilds the catalog from the data files (the old catalog, if any, is kept "
            "beside it); or point the server at the right directory")


def data_files(root: Path) -> list[Path]:
    """Every data file under ``root`` (row batches, diagnoses, suggestion sets), quarantine excluded."""
    found = [p for kind in ("runs", "pools") for p in (root / kind).glob("*/part-*.parquet")]
    found += [p for kind in ("diagnoses", "suggestions") for p in (root / kind).glob("*.parquet")]
    return sorted(found)


def unusable_message(root: Path, problem: str) -> str:
    n = len(data_files(root))
    return (f"refusing to open the data directory: {problem}, and it holds {n} data file(s) that only the "
            f"catalog accounts for; nothing was changed. {_HOW_OUT}")


def refuse_unusable(root: Path) -> None:
    """Raise :class:`StoreUnusable` where data files exist but the catalog is missing or empty."""
    catalog = root / CATALOG
    if not data_files(root):
        return
    if not catalog.exists():
        raise StoreUnusable(unusable_message(root, f"{CATALOG} is missing"))
    if catalog.stat().st_size == 0 or not _has_tables(catalog):
        raise StoreUnusable(unusable_message(root, f"{CATALOG} is empty"))


def read_only_catalog(catalog: Path, **kwargs) -> sqlite3.Connection:
    """A read-only connection to a catalog, also where the directory cannot be written (a backup on
    a read-only mount or snapshot): SQLite's WAL readers need to create ``-shm`` beside it, so there
    the catalog is opened as immutable, which is safe because nothing can write it. A write-ahead
    log left beside it (a copy taken without a clean close) would be ignored that way: refused."""
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, **kwargs)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(catalog.parent, os.W_OK):
            raise
    wal = catalog.with_name(catalog.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise sqlite3.OperationalError(
            f"{catalog.name} is on a read-only file system with an unmerged write-ahead log beside it "
            f"({wal.name}); copy the directory somewhere writable first")
    return sqlite3.connect(f"file:{catalog}?mode=ro&immutable=1", uri=True, **kwargs)


def _has_tables(catalog: Path) -> bool:
    try:
        db = read_only_catalog(catalog)
        try:
            return bool(db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='runs'").fetchall())
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return True        # unreadable, not empty: the integrity check names the problem


def check_catalog_integrity(db: sqlite3.Connection) -> None:
    """``PRAGMA quick_check``; anything but ok raises :class:`sqlite3.DatabaseError`."""
    rows = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        raise sqlite3.DatabaseError("integrity check failed: " + "; ".join(rows[:3]))


def record_fields(record: RunRecord | PoolRecord) -> dict:
    """What a row file carries of its run or pool (enough to rebuild the catalog entry)."""
    fields = dataclasses.asdict(record)
    fields.pop("num_rows", None)
    fields.pop("metadata_schema", None)
    for key in ("index_kind", "index_rows", "index_description"):
        fields.pop(key, None)
    return fields


def unaccounted_files(root: Path, known: set[str]) -> list[Path]:
    return [p for p in data_files(root) if str(p.relative_to(root)) not in known]


def quarantine(root: Path, files: list[Path]) -> list[str]:
    """Move ``files`` under quarantine/<UTC time>/ keeping their relative paths; the new relative paths."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = []
    for f in files:
        rel = f.relative_to(root)
        dest = root / QUARANTINE / stamp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        f.replace(dest)
        fsync_dir(dest.parent)
        moved.append(str(dest.relative_to(root)))
    return moved


# ------------------------------------------------------------------ check
@dataclass
class CheckReport:
    """What ``blindspots store check`` found; ``ok`` is False on any damage."""

    files_checked: int = 0
    problems: list[str] = field(default_factory=list)      # damage: exit non-zero
    notes: list[str] = field(default_factory=list)         # worth knowing, not damage

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(root: str | Path) -> CheckReport:
    """Verify a data directory without changing it: catalog integrity, every file's presence and hash."""
    root = Path(root)
    report = CheckReport()
    catalog = root / CATALOG
    if not catalog.exists() or catalog.stat().st_size == 0:
        report.problems.append(f"{CATALOG} is missing or empty; {len(data_files(root))} data file(s) present")
        return report
    try:
        db = read_only_catalog(catalog)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"the catalog cannot be opened: {exc}")
        return report
    try:
        try:
            check_catalog_integrity(db)
            hashes = dict(db.execute("SELECT path, sha256 FROM files").fetchall()) if _table(db, "files") else {}
            named = [r[0] for r in db.execute("SELECT file FROM batches")]
            named += [f"diagnoses/{r[0]}.parquet" for r in db.execute("SELECT id FROM diagnoses")]
            named += [f"suggestions/{r[0]}.parquet" for r in db.execute("SELECT id FROM suggestion_sets")]
            deleting = {r[0] for r in db.execute("SELECT path FROM deleting")} if _table(db, "deleting") else set()
        except sqlite3.DatabaseError as exc:
            report.problems.append(f"the catalog is damaged: {exc}")
            return report
    finally:
        db.close()
    for rel in sorted(set(named) | set(hashes)):
        path = root / rel
        report.files_checked += 1
        if not path.exists():
            report.problems.append(f"{rel}: missing")
        elif hashes.get(rel) and sha256_of(path) != hashes[rel]:
            report.problems.append(f"{rel}: SHA-256 differs from the one recorded at write")
        elif rel.endswith(".parquet"):
            try:
                read_parquet(path, rel)
            except DataLoss as exc:
                report.problems.append(f"{rel}: {exc}")
        if rel not in hashes:
            report.notes.append(f"{rel}: no hash recorded (written before hashes were kept)")
    stray = unaccounted_files(root, set(named) | set(hashes) | deleting)
    report.problems += [f"{p.relative_to(root)}: no catalog row names it" for p in stray]
    if deleting:
        report.notes.append(f"{len(deleting)} file(s) of a deleted run or pool still to remove (the server "
                            "removes them when it opens the store)")
    held = sorted(p for p in (root / QUARANTINE).rglob("*") if p.is_file()) if (root / QUARANTINE).exists() else []
    if held:
        report.notes.append(f"{len(held)} file(s) in {QUARANTINE}/ (moved aside at an earlier start; "
                            "`blindspots store recover` can take them back)")
    return report


def _table(db: sqlite3.Connection, name: str) -> bool:
    return bool(db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchall())


# ------------------------------------------------------------------ recover
@dataclass
class RecoverReport:
    runs: int = 0
    pools: int = 0
    batches: int = 0
    rows: int = 0
    diagnoses: int = 0
    suggestion_sets: int = 0
    kept_aside: list[str] = field(default_factory=list)     # files that could not be taken in
    old_catalog: Optional[str] = None


def recover_store(root: str | Path, include_quarantine: bool = True) -> RecoverReport:
    """Rebuild ``catalog.sqlite`` from the data files (the server must be stopped).

    The old catalog (if any) is renamed beside it, never deleted. Files that
    cannot be read, or repeat sample ids of a file taken in before them, are
    moved to quarantine. Quarantined files are put back first when
    ``include_quarantine``. Jobs are not rebuilt (they were transient). A directory
    that a server has open is refused (StoreUnusable), before anything moves.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory")
    if not os.access(root, os.W_OK):
        raise ValueError(f"{root} cannot be written (a read-only volume or snapshot?); nothing was changed. "
                         "Recover a copy: `blindspots store copy NEW_DIR --data-dir DIR` where the catalog is "
                         "readable, or copy the directory somewhere writable and recover that")
    owner = DirectoryOwner(root)        # never under a running server: refused before anything moves
    try:
        return _recover(root, include_quarantine, owner)
    finally:
        owner.release()


def _recover(root: Path, include_quarantine: bool, owner: DirectoryOwner) -> RecoverReport:
    from .embedded import EmbeddedStore       # the catalog schema and writers live there
    report = RecoverReport()
    if include_quarantine and (root / QUARANTINE).exists():
        for held in sorted(p for p in (root / QUARANTINE).rglob("*.parquet")):
            rel = Path(*held.relative_to(root / QUARANTINE).parts[1:])
            if not (root / rel).exists():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                held.replace(root / rel)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for suffix in ("", "-wal", "-shm"):
        old = root / (CATALOG + suffix)
        if old.exists():
            old.replace(root / f"catalog.replaced-{stamp}.sqlite{suffix}")
            if suffix == "":
                report.old_catalog = f"catalog.replaced-{stamp}.sqlite"
    # Index blobs are derived data the server rebuilds; without a catalog row they can't be trusted.
    bad = sorted((root / "pools").glob("*/index.faiss"))
    store = EmbeddedStore(root, catalog_rebuild=True, owner=owner)
    try:
        bad += _rebuild(store, root, data_files(root), report)
        if bad:
            report.kept_aside = quarantine(root, bad)
    finally:
        store.close()
    return report


def _rebuild(store, root: Path, files: list[Path], report: RecoverReport) -> list[Path]:
    bad: list[Path] = []
    seen_ids: dict[tuple[str, str], set[str]] = {}
    batches = []
    for f in files:
        meta = file_meta(f)
        rel = f.relative_to(root)
        if rel.parts[0] in ("runs", "pools"):
            try:
                table = read_parquet(f, str(rel))
            except DataLoss:
                bad.append(f)
                continue
            batches.append((rel, meta or {}, table))
        elif rel.parts[0] == "diagnoses" and meta:
            fields = meta["record"]
            store._exec([("INSERT INTO diagnoses VALUES (?,?,?,?,?)",
                          (fields["id"], fields["run_id"], fields["created_at"], fields["job_id"],
                           base64.b64decode(fields["payload"]))),
                         ("INSERT OR REPLACE INTO files VALUES (?,?,?)", (str(rel), sha256_of(f), f.stat().st_size))])
            report.diagnoses += 1
        elif rel.parts[0] == "suggestions" and meta:
            r = meta["record"]
            table = pq.read_table(f, columns=["sample_id"])
            store._exec([suggestion_set_insert(SuggestionSetRecord(**r), "?"),
                         ("INSERT OR REPLACE INTO files VALUES (?,?,?)", (str(rel), sha256_of(f), f.stat().st_size))]
                        + [("INSERT INTO suggested VALUES (?,?,?,?)", (r["id"], r["run_id"], r["pool_id"], sid))
                           for sid in table.column("sample_id").to_pylist()])
            report.suggestion_sets += 1
        else:
            bad.append(f)      # a diagnosis or suggestion file without its record cannot be placed
    batches.sort(key=lambda b: (b[0].parts[0], b[0].parts[1], b[1].get("seq", 0), b[0].name))
    for rel, meta, table in batches:
        target = "run" if rel.parts[0] == "runs" else "pool"
        target_id = rel.parts[1]
        ids = table.column("sample_id").to_pylist()
        seen = seen_ids.setdefault((target, target_id), set())
        if seen.intersection(ids):
            bad.append(root / rel)
            continue
        if not seen:
            _create_target(store, target, target_id, meta, table, report)
        seen.update(ids)
        schema = {c[2:]: _kind(table.schema.field(c).type) for c in table.column_names if c.startswith("m.")}
        stored = json.loads(store._query(f"SELECT metadata_schema FROM {target}s WHERE id=?", (target_id,))[0][0])
        seq = store._query("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE target=? AND target_id=?",
                           (target, target_id))[0][0]
        file_row = ("INSERT OR REPLACE INTO files VALUES (?,?,?)",
                    (str(rel), sha256_of(root / rel), (root / rel).stat().st_size))
        store._commit_batch(target, target_id, meta.get("batch_id") or f"recovered-{rel.name}", seq, rel, ids,
                            row_digests(table), {**stored, **schema}, file_row)
        report.batches += 1
        report.rows += len(ids)
    return bad


def _kind(arrow_type) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "number" if pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type) else "string"


def _create_target(store, target: str, target_id: str, meta: dict, table, report: RecoverReport) -> None:
    """Create the run or pool a batch belongs to, from the record the file carries (or a stand-in)."""
    record = dict(meta.get("record") or {})
    names = table.column_names
    dim = table.schema.field("embedding").type.list_size if "embedding" in names else 0
    classes = table.schema.field("probabilities").type.list_size if "probabilities" in names else 0
    stand_in = dict(id=target_id, name=target_id, project="default", embedding_dim=dim, created_at=time.time())
    if target == "run":
        store.create_run(RunRecord(**(record or dict(
            stand_in, model_name="", model_version="", dataset_name="",
            class_names=[f"class_{i}" for i in range(classes)]))))
        report.runs += 1
    else:
        store.create_pool(PoolRecord(**(record or dict(stand_in, num_classes=classes))))
        report.pools += 1
