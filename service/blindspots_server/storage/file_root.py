"""Where a store's data files live: a local directory or any pyarrow filesystem.

``FileRoot(uri)`` takes a local path (or ``file://``), or a URI pyarrow.fs opens
(``s3://``, ``gs://``, ``hdfs://`` where pyarrow was built with them), or any
other fsspec scheme (wrapped with pyarrow's FSSpecHandler; ``memory://`` is what
the tests use). Paths given to its methods are relative to the root, with ``/``.

Durability differs by kind, on purpose:

- local (and shared POSIX mounts): write to ``tmp/``, fsync, rename into place,
  fsync the directory (:mod:`.files`), so a crash never leaves half a file;
- object stores: the whole object is written once under a new name; a PUT is
  atomic there, and no name is ever written twice by the stores, so a reader
  never sees a half-replaced object.

Every write returns the file's SHA-256, which the catalog records in the same
transaction that makes the file visible; Parquet files also carry page
checksums, verified on every read.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.fs as pafs

from .base import DataLoss
from .files import _damaged, fsync_dir, parquet_bytes, read_blob, read_parquet, write_blob, write_parquet


def _open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as arrow_error:
        try:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem
        except ImportError:
            raise ValueError(f"files: cannot open {uri!r} ({arrow_error})") from None
        scheme, rest = uri.split("://", 1)
        try:
            fs = fsspec.filesystem(scheme)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"files: no filesystem for {scheme!r} URIs is installed ({exc})") from None
        return PyFileSystem(FSSpecHandler(fs)), rest.rstrip("/") or "/"


def open_location(location: str, what: str):
    """An open pyarrow file for a :class:`.base.RowFile` location (a local path or a URI), from any
    process: a worker opens it by itself. A missing file raises :class:`DataLoss` naming ``what``."""
    try:
        if "://" not in location or location.startswith("file://"):
            return pa.OSFile(location[len("file://"):] if location.startswith("file://") else location)
        fs, path = _open_filesystem(location)
        return fs.open_input_file(path)
    except (OSError, pa.ArrowException) as exc:
        raise _damaged(what, exc, Path(location)) from None


class FileRoot:
    """Durable writes and checked reads of data files under one root."""

    def __init__(self, location: str | Path):
        location = str(location)
        if location.startswith("file://"):
            location = location[len("file://"):]
        self.uri = location
        if "://" not in location:
            self.local: Optional[Path] = Path(location)
            self.local.mkdir(parents=True, exist_ok=True)
            (self.local / "tmp").mkdir(exist_ok=True)
            self._fs, self._base = pafs.LocalFileSystem(), str(self.local.resolve())
        else:
            self.local = None
            self._fs, self._base = _open_filesystem(location)
            self._fs.create_dir(self._base, recursive=True)

    def _full(self, rel: str) -> str:
        return posixpath.join(self._base, rel)

    def location(self, rel: str) -> str:
        """Where another process opens ``rel`` (:func:`open_location`): an absolute path, or the root's URI
        with ``rel`` appended to its path (a query string, e.g. an endpoint, stays at the end)."""
        if self.local is not None:
            return posixpath.join(self._base, rel)
        base, sep, query = self.uri.partition("?")
        return f"{base.rstrip('/')}/{rel}{sep}{query}"

    # ------------------------------------------------------------ writes
    def write_parquet(self, table: pa.Table, rel: str, meta: Optional[dict] = None) -> tuple[str, int]:
        """Write a data file at ``rel``; its (SHA-256, size in bytes)."""
        if self.local is not None:
            digest = write_parquet(table, self.local / "tmp", self.local / rel, meta)
            return digest, (self.local / rel).stat().st_size
        return self._put(parquet_bytes(table, meta), rel)

    def write_blob(self, data: bytes, rel: str) -> tuple[str, int]:
        if self.local is not None:
            return write_blob(data, self.local / "tmp", self.local / rel), len(data)
        return self._put(data, rel)

    def _put(self, data: bytes, rel: str) -> tuple[str, int]:
        parent = posixpath.dirname(self._full(rel))
        if parent:
            self._fs.create_dir(parent, recursive=True)
        with self._fs.open_output_stream(self._full(rel)) as out:
            out.write(data)
        return hashlib.sha256(data).hexdigest(), len(data)

    def copy_from(self, source: "FileRoot", src_rel: str, rel: str, sha256: str = "") -> tuple[str, int]:
        """Copy ``src_rel`` of another root to ``rel`` here, in 4 MiB pieces (an index may be GBs),
        as durably as this root writes its own files; its (SHA-256, size). Where ``sha256`` (the
        hash recorded at write) is given and the bytes differ, nothing is left here and
        :class:`DataLoss` names the file; a missing file is DataLoss too."""
        digest, size = hashlib.sha256(), 0
        try:
            stream = source._fs.open_input_stream(source._full(src_rel))
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(src_rel, exc, Path(src_rel)) from None
        if self.local is not None:
            tmp = self.local / "tmp" / f"{uuid.uuid4().hex}.bin"
            sink = open(tmp, "wb")
        else:
            parent = posixpath.dirname(self._full(rel))
            if parent:
                self._fs.create_dir(parent, recursive=True)
            sink = self._fs.open_output_stream(self._full(rel))
        try:
            with stream, sink:
                while piece := stream.read(1 << 22):
                    digest.update(piece)
                    size += len(piece)
                    sink.write(piece)
                if self.local is not None:
                    sink.flush()
                    os.fsync(sink.fileno())
            if sha256 and digest.hexdigest() != sha256:
                raise DataLoss(f"{src_rel}: stored data is damaged (its SHA-256 differs from the one recorded "
                               "at write); `blindspots store check` lists every damaged file")
            if self.local is not None:
                dest = self.local / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
                fsync_dir(dest.parent)
        except BaseException:
            if self.local is not None:
                tmp.unlink(missing_ok=True)
            else:
                self.delete(rel)
            raise
        return digest.hexdigest(), size

    def delete(self, rel: str) -> None:
        """Remove a file if it is there (a write whose catalog commit failed)."""
        try:
            self._fs.delete_file(self._full(rel))
        except (FileNotFoundError, OSError):
            pass

    def remove_empty_dir(self, rel: str) -> None:
        """Remove a directory of a local root if it is empty (object stores have no directories to
        leave behind: a prefix with no objects is gone)."""
        if self.local is not None:
            try:
                (self.local / rel).rmdir()
            except OSError:
                pass

    # ------------------------------------------------------------ reads
    def read_parquet(self, rel: str, what: str, columns: Optional[list[str]] = None) -> pa.Table:
        if self.local is not None:
            return read_parquet(self.local / rel, what, columns)
        try:
            source = self._fs.open_input_file(self._full(rel))
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(what, exc, Path(rel)) from None
        with source:
            return read_parquet(source, what, columns)

    def read_blob(self, rel: str, what: str, sha256: str) -> bytes:
        if self.local is not None:
            return read_blob(self.local / rel, what, sha256)
        try:
            with self._fs.open_input_stream(self._full(rel)) as source:
                data = source.read()
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(what, exc, Path(rel)) from None
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise DataLoss(f"{what}: stored data is damaged (its SHA-256 differs from the one recorded "
                           "at write); nothing was served from it")
        return data

    def sha256(self, rel: str) -> str:
        """SHA-256 of a stored file, read in 1 MiB pieces (a missing file raises FileNotFoundError)."""
        digest = hashlib.sha256()
        with self._fs.open_input_stream(self._full(rel)) as source:
            while piece := source.read(1 << 20):
                digest.update(piece)
        return digest.hexdigest()

    def listing(self) -> list[str]:
        """Every file under the root (relative paths), the root's own tmp/ left out."""
        selector = pafs.FileSelector(self._base, recursive=True, allow_not_found=True)
        base = self._base.strip("/") + "/"       # filesystems differ on a leading slash
        out = []
        for info in self._fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                path = info.path.lstrip("/")
                rel = path[len(base):] if path.startswith(base) else path
                if not rel.startswith("tmp/"):
                    out.append(rel)
        return sorted(out)

    def exists(self, rel: str) -> bool:
        return self._fs.get_file_info(self._full(rel)).type == pafs.FileType.File
