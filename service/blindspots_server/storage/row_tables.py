"""Reading a run's or pool's rows from its batch files, with a bounded row cache.

Shared by every backend: the catalog says which files (in order), the metadata
schema and the row count; this module reads the files, unifies their columns
and keeps recently read tables. The cache key holds the catalog's row count,
so a table is never served after another batch (from this process or another
replica on the same catalog) was committed: batches only append.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import pyarrow as pa

from .rows import META_PREFIX, RowData, fill_vectors, to_row_data, unify


class RowCache:
    """Recently read row tables, bounded in count and in bytes (a 10^7-row pool is read, not kept twice)."""

    def __init__(self, max_tables: int = 4, max_bytes: int = 2 << 30):
        self._tables: OrderedDict[tuple, pa.Table] = OrderedDict()
        self._max_tables, self._max_bytes = max_tables, max_bytes
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tables)

    def get(self, target: str, target_id: str, num_rows: int, columns: Optional[list[str]]) -> Optional[pa.Table]:
        """The cached table for exactly these columns, or the asked columns of a cached whole table."""
        key = (target, target_id, num_rows, tuple(columns) if columns else None)
        whole = (target, target_id, num_rows, None)
        with self._lock:
            for k in (key, whole):
                if k in self._tables:
                    self._tables.move_to_end(k)
                    hit = self._tables[k]
                    return hit if k == key else hit.select([c for c in columns if c in hit.column_names])
        return None

    def forget(self, target: str, target_id: str) -> None:
        """Drop every cached table of a run or pool (deleted)."""
        with self._lock:
            for key in [k for k in self._tables if k[:2] == (target, target_id)]:
                del self._tables[key]

    def put(self, target: str, target_id: str, num_rows: int, columns: Optional[list[str]], table: pa.Table) -> None:
        with self._lock:
            if table.nbytes <= self._max_bytes:
                self._tables[(target, target_id, num_rows, tuple(columns) if columns else None)] = table
            while (len(self._tables) > self._max_tables
                   or sum(t.nbytes for t in self._tables.values()) > self._max_bytes):
                self._tables.popitem(last=False)


# progress(fraction, stage): called between files; it may raise to stop the read (a cancelled job).
ReadProgress = Callable[[float, str], None]


def read_target_rows(read_file: Callable[[str, Optional[list[str]]], pa.Table], files: list[str],
                     schema: dict[str, str], columns: Optional[list[str]],
                     progress: Optional[ReadProgress] = None) -> pa.Table:
    """Concatenate the batch ``files`` (in order) of one target; ``read_file(path, columns)`` reads one."""
    if columns:
        # Read only the asked columns (a batch may lack an optional one, e.g. probabilities).
        wanted = set(columns)
        schema = {n: kind for n, kind in schema.items() if META_PREFIX + n in wanted}
    tables = []
    for i, f in enumerate(files):
        if progress is not None:
            progress(i / len(files), f"batch file {i + 1} of {len(files)}")
        tables.append(read_file(f, columns))
    if progress is not None and tables:
        progress(1.0, f"joining {len(tables)} batch files")
    return unify(tables, schema) if tables else pa.table({})


def read_target_row_data(read_file: Callable[[str, Optional[list[str]]], pa.Table], files: list[str],
                         schema: dict[str, str], num_rows: int, columns: Optional[list[str]] = None,
                         progress: Optional[ReadProgress] = None) -> RowData:
    """The first ``num_rows`` rows of the batch ``files`` as numpy arrays, read one file at a time.

    Equal to ``to_row_data(read_target_rows(...))`` but without the whole table: each
    file's vectors go straight into float32 arrays allocated once for all rows, and only
    the small columns (ids, uris, labels, metadata) are joined. Peak memory is the
    arrays plus one file, not the table plus the arrays; nothing is cached.
    """
    if columns:
        wanted = set(columns)
        schema = {n: kind for n, kind in schema.items() if META_PREFIX + n in wanted}
    vectors: dict[str, np.ndarray] = {}
    rest: list[pa.Table] = []
    filled = 0
    for i, f in enumerate(files):
        if filled >= num_rows:
            break           # batches committed after the catalog's row count
        if progress is not None:
            progress(i / len(files), f"batch file {i + 1} of {len(files)}")
        table = read_file(f, columns)
        table = table.slice(0, min(table.num_rows, num_rows - filled))
        rest.append(fill_vectors(vectors, table, filled, num_rows))
        filled += table.num_rows
        del table
    if filled < num_rows:
        vectors = {name: m[:filled].copy() for name, m in vectors.items()}
    if progress is not None and rest:
        progress(1.0, f"joining {len(rest)} batch files")
    return to_row_data(unify(rest, schema) if rest else pa.table({}), vectors)


def cached_rows(cache: RowCache, target: str, target_id: str, num_rows: int, columns: Optional[list[str]],
                read: Callable[[], pa.Table]) -> pa.Table:
    """``read()`` unless the cache holds the table for this row count; cache what was read."""
    hit = cache.get(target, target_id, num_rows, columns)
    if hit is not None:
        return hit
    table = read()
    cache.put(target, target_id, num_rows, columns, table)
    return table
