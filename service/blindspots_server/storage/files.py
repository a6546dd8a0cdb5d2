"""Durable writes and checked reads of the embedded store's files.

Every data file is written to ``tmp/``, fsynced, renamed into place and its
directory fsynced; its SHA-256 is returned so the catalog can record it in the
same transaction that makes the file visible. Parquet files also carry page
checksums, verified on every read, so a flipped byte inside an embedding chunk
is a :class:`DataLoss`, never data. ``blindspots store check`` verifies the
whole-file hashes.

Each file also carries, in its Parquet key-value metadata, what the catalog
says about it (``blindspots.*`` keys), so ``blindspots store recover`` can
rebuild a lost catalog from the files alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from .base import DataLoss

# Float vectors neither dictionary-encode nor compress well; trying costs more than
# the disk it saves. Strings and metadata keep both.
_VECTOR_COLUMNS = {"embedding", "probabilities"}
META_KEY = "blindspots.meta"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _place(tmp: Path, dest: Path) -> str:
    """fsync ``tmp``, rename it to ``dest``, fsync the directory; the file's SHA-256."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    digest = sha256_of(tmp)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return digest


def _own_metadata(table: pa.Table) -> dict[bytes, bytes]:
    """The table's own ``blindspots.*`` schema metadata (e.g. a suggestion set's answer): kept
    through a write and a read. The store's record (META_KEY) and others' keys (pandas') are not."""
    return {k: v for k, v in (table.schema.metadata or {}).items()
            if k.startswith(b"blindspots.") and k != META_KEY.encode()}


def _with_meta(table: pa.Table, meta: Optional[dict]) -> pa.Table:
    """``table`` with the store's ``meta`` (what a recovery reads) beside its own metadata."""
    if meta is None:
        return table
    record = json.dumps(meta, sort_keys=True).encode()
    return table.replace_schema_metadata({**_own_metadata(table), META_KEY.encode(): record})


def write_parquet(table: pa.Table, tmp_dir: Path, dest: Path, meta: Optional[dict] = None) -> str:
    """Write ``table`` durably at ``dest`` (page checksums on); returns the file's SHA-256."""
    table = _with_meta(table, meta)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.parquet"
    try:
        _write_table(table, tmp)
        return _place(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)     # e.g. a full disk: leave no partial file behind
        raise


def _write_table(table: pa.Table, where) -> None:
    """The one Parquet layout of every data file: page checksums on, vectors plain."""
    pq.write_table(table, where, compression="snappy", write_page_checksum=True,
                   use_dictionary=[c for c in table.column_names if c not in _VECTOR_COLUMNS])


def parquet_bytes(table: pa.Table, meta: Optional[dict] = None) -> bytes:
    """``table`` as the bytes of a data file (for stores that write whole objects once)."""
    table = _with_meta(table, meta)
    sink = pa.BufferOutputStream()
    _write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_blob(data: bytes, tmp_dir: Path, dest: Path) -> str:
    tmp = tmp_dir / f"{uuid.uuid4().hex}.bin"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        return _place(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _damaged(what: str, exc: BaseException, path: Path) -> DataLoss:
    # The message goes to clients: no server paths in it.
    reason = str(exc).replace(str(path), "<file>") or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        reason = "the file is missing"
    return DataLoss(f"{what}: stored data is damaged ({reason}); nothing was served from it. "
                    "An operator can run `blindspots store check` on the data directory")


def read_parquet(path, what: str, columns: Optional[list[str]] = None) -> pa.Table:
    """Read a Parquet file (a path or an open pyarrow file), verifying page checksums;
    damage raises :class:`DataLoss` naming ``what``."""
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        names = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[c for c in columns if c in names] if columns else None)
    except (OSError, pa.ArrowException) as exc:
        raise _damaged(what, exc, path) from None
    # Row batches have no metadata of their own, so they join.
    return table.replace_schema_metadata(_own_metadata(table) or None)


def read_blob(path: Path, what: str, sha256: str) -> bytes:
    """Read a whole file and check it against its recorded SHA-256 (when one is recorded)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _damaged(what, exc, path) from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise DataLoss(f"{what}: stored data is damaged (its SHA-256 differs from the one recorded "
                       "at write); nothing was served from it. An operator can run `blindspots store check`")
    return data


def file_meta(path: Path) -> Optional[dict]:
    """The ``blindspots.meta`` a Parquet file was written with (None if absent or unreadable)."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY.encode())
    except (OSError, pa.ArrowException):
        return None
    return json.loads(raw) if raw else None
