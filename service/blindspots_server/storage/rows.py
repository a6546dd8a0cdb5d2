"""The canonical columnar layout of run and pool rows, and numpy views of it.

Columns: ``sample_id`` (string), ``label`` (int32, runs only), ``probabilities``
(fixed-size list of float32, optional for pools), ``embedding`` (fixed-size
list of float32), ``uri`` (string), and one ``m.<name>`` column per metadata
column (string, float64 or timestamp[us]).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .base import DataLoss, RowFile
from .file_root import open_location
from .files import _damaged

META_PREFIX = "m."
COLUMN_TYPES = ("string", "number", "timestamp")
_ARROW_TYPES = {"string": pa.string(), "number": pa.float64(), "timestamp": pa.timestamp("us")}


@dataclass
class RowData:
    """Rows of a run or pool as numpy arrays and a metadata DataFrame."""

    sample_ids: np.ndarray
    embeddings: np.ndarray                 # float32 N x D
    labels: Optional[np.ndarray]           # int64, runs only
    probabilities: Optional[np.ndarray]    # float32 N x C
    uris: np.ndarray
    metadata: pd.DataFrame

    def __len__(self) -> int:
        return len(self.sample_ids)


def _fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def build_table(sample_ids: list[str], embeddings: np.ndarray, labels: Optional[np.ndarray],
                probabilities: Optional[np.ndarray], uris: Optional[list[str]],
                metadata: dict[str, tuple[str, pa.Array]]) -> pa.Table:
    """Assemble one batch in the canonical layout. ``metadata`` maps a column
    name to (type, values)."""
    n = len(sample_ids)
    cols: dict[str, pa.Array] = {"sample_id": pa.array(sample_ids, pa.string())}
    if labels is not None:
        cols["label"] = pa.array(np.asarray(labels, dtype=np.int32))
    if probabilities is not None:
        cols["probabilities"] = _fixed_list(probabilities)
    cols["embedding"] = _fixed_list(embeddings)
    cols["uri"] = pa.array(list(uris) if uris else [""] * n, pa.string())
    for name, (kind, values) in metadata.items():
        cols[META_PREFIX + name] = values.cast(_ARROW_TYPES[kind])
    return pa.table(cols)


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = arr.type.list_size
    if len(arr) == 0:
        return np.zeros((0, width), dtype=np.float32)
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)


VECTOR_COLUMNS = ("embedding", "probabilities")


def to_row_data(table: pa.Table, vectors: Optional[dict[str, np.ndarray]] = None) -> RowData:
    """Numpy views of a table's rows; ``vectors`` holds matrices already taken out of it
    (``embedding`` / ``probabilities``, see :func:`fill_vectors`)."""
    names = table.column_names
    vectors = vectors or {}
    meta = {n[len(META_PREFIX):]: table.column(n).to_pandas() for n in names if n.startswith(META_PREFIX)}

    def matrix(name: str) -> Optional[np.ndarray]:
        if name in vectors:
            return vectors[name]
        return _matrix(table.column(name)) if name in names else None

    embeddings = matrix("embedding")
    return RowData(
        sample_ids=(np.asarray(table.column("sample_id").to_pylist(), dtype=object) if "sample_id" in names
                    else np.zeros(0, dtype=object)),
        embeddings=embeddings if embeddings is not None else np.zeros((table.num_rows, 0), np.float32),
        labels=(table.column("label").to_numpy().astype(np.int64) if "label" in names else None),
        probabilities=matrix("probabilities"),
        uris=(np.asarray(table.column("uri").to_pylist(), dtype=object) if "uri" in names
              else np.zeros(0, dtype=object)),
        metadata=pd.DataFrame(meta, index=pd.RangeIndex(table.num_rows)),
    )


def fill_vectors(vectors: dict[str, np.ndarray], table: pa.Table, start: int, num_rows: int) -> pa.Table:
    """Copy ``table``'s vector columns into rows ``start:`` of ``vectors`` (float32
    num_rows x width, allocated at the first table that has the column) and return the
    table without them: reading batch files one by one this way holds each vector once."""
    for name in VECTOR_COLUMNS:
        if name not in table.column_names:
            continue
        column = table.column(name)
        width = column.type.list_size
        if name not in vectors:
            # zeros: untouched pages cost nothing, and rows of a batch without the column stay 0
            vectors[name] = np.zeros((num_rows, width), dtype=np.float32)
        at = start
        for chunk in column.chunks:
            if len(chunk) == 0:
                continue
            values = chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
            vectors[name][at:at + len(values)] = values
            at += len(values)
        table = table.drop_columns([name])
    return table


def unify(tables: list[pa.Table], schema: dict[str, str]) -> pa.Table:
    """Concatenate batches whose metadata columns differ: missing columns become nulls.

    Linear in batches x columns: each batch is assembled once from its columns (adding
    them one by one with ``append_column`` copies the schema each time, quadratic in
    columns: minutes for a few thousand)."""
    if not tables:
        return pa.table({})
    first = tables[0].column_names
    known = set(first)
    order = first + [META_PREFIX + name for name in schema if META_PREFIX + name not in known]
    types = {META_PREFIX + name: _ARROW_TYPES[kind] for name, kind in schema.items()}
    out = []
    for t in tables:
        present = set(t.column_names)
        if present == set(order):
            out.append(t.select(order))
            continue
        columns = [t.column(c) if c in present else pa.nulls(t.num_rows, types[c]) for c in order]
        out.append(pa.Table.from_arrays(columns, names=order))
    return pa.concat_tables(out)


def row_digests(table: pa.Table) -> list[str]:
    """A content digest per row (hex): equal for a row logged again with the same label,
    probabilities, embedding, uri and metadata, whatever batch carries it; this is how a
    re-sent row is told from a clash (per-row idempotency).

    Vectors are hashed as their float32 bytes; uri and metadata through pandas' keyed
    SipHash of each value (stable across processes) with the column names.
    """
    n = table.num_rows
    names = table.column_names
    parts: list[np.ndarray] = []
    if "label" in names:
        parts.append(np.ascontiguousarray(table.column("label").to_numpy().astype("<i4")).view(np.uint8).reshape(n, -1))
    for name in ("probabilities", "embedding"):
        if name in names:
            parts.append(np.ascontiguousarray(_matrix(table.column(name)).astype("<f4")).view(np.uint8).reshape(n, -1))
    other = sorted(c for c in names if c == "uri" or c.startswith(META_PREFIX))
    salt = "\0".join(other).encode()
    if other:
        frame = table.select(other).to_pandas()
        hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().astype("<u8")
        parts.append(hashed.view(np.uint8).reshape(n, 8))
    rows = np.hstack(parts) if parts else np.zeros((n, 0), dtype=np.uint8)
    return [hashlib.blake2b(row.tobytes() + salt, digest_size=16).hexdigest() for row in rows]


class ParquetEmbeddings:
    """The ``embedding`` column of a pool's Parquet batch files, in order, as a row source
    (core.sharded_index.RowSource): ``read(start, stop)`` reads only the row groups holding those
    rows, so an index shard given this object and a row range reads its own rows from the files
    instead of receiving them. ``files`` are paths, or the :class:`.base.RowFile` entries of
    ``Store.row_files`` (local paths or URIs every worker can open: a shared file root or an
    object store); with RowFiles, a file whose row count differs from the catalog's is
    :class:`.base.DataLoss`, and page checksums are verified on every read as in the stores."""

    def __init__(self, files: "list[RowFile | str]", column: str = "embedding", what: str = "pool rows"):
        self.column, self.what = column, what
        self.paths = [str(getattr(f, "location", f)) for f in files]
        self._groups: list[tuple[int, int, int, int]] = []     # (file, row group, first row, end row)
        rows = 0
        for i, f in enumerate(files):
            meta = self._read(i, lambda parquet: parquet.metadata)
            expected = getattr(f, "rows", None)
            if expected is not None and meta.num_rows != expected:
                raise DataLoss(f"{what}: stored data is damaged (a row file holds {meta.num_rows} rows, the "
                               f"catalog recorded {expected}); nothing was served from it")
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                self._groups.append((i, g, rows, rows + n))
                rows += n
        self._rows = rows
        self._cached: Optional[tuple[tuple[int, int], np.ndarray]] = None

    def _read(self, i: int, read: Callable[[pq.ParquetFile], Any]) -> Any:
        """``read`` applied to file ``i``, opened here (in the worker); damage is :class:`.base.DataLoss`."""
        try:
            with open_location(self.paths[i], self.what) as source:
                return read(pq.ParquetFile(source, page_checksum_verification=True))
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(self.what, exc, self.paths[i]) from None

    def __len__(self) -> int:
        return self._rows

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cached": None}        # ship the description, not a cached group

    def _group(self, i: int, g: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != (i, g):
            table = self._read(i, lambda parquet: parquet.read_row_group(g, columns=[self.column]))
            self._cached = ((i, g), _matrix(table.column(self.column)))
        return self._cached[1]

    def read(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= self._rows:
            raise IndexError(f"rows {start}..{stop} outside 0..{self._rows}")
        parts = [self._group(i, g)[max(start, a) - a:min(stop, b) - a]
                 for i, g, a, b in self._groups if a < stop and b > start]
        if not parts:
            return np.zeros((0, self._group(*self._groups[0][:2]).shape[1] if self._groups else 0), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
