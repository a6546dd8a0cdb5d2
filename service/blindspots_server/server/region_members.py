"""ListRegionMembers' work: one page of a failure region's rows, read from the run's
rows and the diagnosis's per-row regions, for a run of any size.

Members are the diagnosed rows: the diagnosis's per-row regions are lined up with
the run's rows as they are now (``diagnosed_rows.align``), so rows ingested after
the diagnosis are never members of its regions.
"""
from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict

import numpy as np
import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb

from ..storage import NotFound, RunRecord, Store
from ..storage.rows import META_PREFIX
from .diagnosed_rows import DiagnosedRows, align
from .validation import InvalidArgument, require

DEFAULT_PAGE = 1000
MAX_PAGE = 10000
_OFFSET = re.compile(r"[0-9]{1,15}", re.ASCII)


def _token(diagnosis_id: str, region_id: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{diagnosis_id}:{region_id}:{offset}".encode()).decode().rstrip("=")


def _offset(token: str, diagnosis_id: str, region_id: int, total: int) -> int:
    """The member offset a page token stands for; InvalidArgument naming page_token otherwise."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4)).decode("utf-8")
        diag, region, offset = text.rsplit(":", 2)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument("page_token", "is not a token this server issued") from None
    if not _OFFSET.fullmatch(offset):
        raise InvalidArgument("page_token", "is not a token this server issued")
    if diag != diagnosis_id or region != str(region_id):
        raise InvalidArgument("page_token", "was issued for another diagnosis or region")
    if int(offset) > total:
        raise InvalidArgument("page_token", "points past the region's last row")
    return int(offset)


def _metadata_column(name: str, kind: str, values: pa.ChunkedArray) -> pb.Column:
    col = pb.Column(name=name)
    null = values.is_null().to_numpy(zero_copy_only=False)
    if kind == "number":
        col.numbers.values.extend(values.to_numpy(zero_copy_only=False).astype(np.float64).tolist())
        return col
    if kind == "timestamp":
        micros = values.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        col.timestamps.unix_micros.extend(micros.tolist())
    else:
        col.strings.values.extend("" if v is None else v for v in values.to_pylist())
    if null.any():
        col.is_null.extend(null.tolist())
    return col


class RegionMembers:
    """Pages of region members; the diagnosis lined up with the run is kept for the next
    pages (a few diagnoses, keyed by the run's row count, so new rows start afresh)."""

    def __init__(self, store: Store, cached: int = 4):
        self.store = store
        self.cached = cached
        self._aligned: OrderedDict[tuple[str, int], DiagnosedRows] = OrderedDict()
        self._lock = threading.Lock()

    def _seen(self, diagnosis_id: str, table: pa.Table) -> DiagnosedRows:
        key = (diagnosis_id, table.num_rows)
        with self._lock:
            if key in self._aligned:
                self._aligned.move_to_end(key)
                return self._aligned[key]
        seen = align(self.store.diagnosis_rows(diagnosis_id),
                     np.asarray(table.column("sample_id").to_pylist(), dtype=object), diagnosis_id)
        with self._lock:
            self._aligned[key] = seen
            while len(self._aligned) > self.cached:
                self._aligned.popitem(last=False)
        return seen

    def page(self, run: RunRecord, diagnosis: pb.Diagnosis, region_id: int, page_size: int,
             page_token: str) -> pb.ListRegionMembersResponse:
        """One page of the rows of region ``region_id`` of ``diagnosis`` (a diagnosis of ``run``)."""
        require(0 <= page_size <= MAX_PAGE, "page_size", f"must be between 0 and {MAX_PAGE}")
        ids = sorted(r.id for r in diagnosis.regions)
        if region_id not in ids:
            have = f"regions {ids[0]}..{ids[-1]}" if ids else "no region"
            raise NotFound(f"region_id: diagnosis {diagnosis.id!r} has no region {region_id} (it has {have})")
        schema = dict(sorted(run.metadata_schema.items()))
        table = self.store.read_rows("run", run.id, ["sample_id", "label", "probabilities", "uri"]
                                     + [META_PREFIX + name for name in schema])
        return _page(table, schema, self._seen(diagnosis.id, table), diagnosis.id, region_id,
                     page_size, page_token)


def _page(table: pa.Table, schema: dict[str, str], seen: DiagnosedRows, diagnosis_id: str, region_id: int,
          page_size: int, page_token: str) -> pb.ListRegionMembersResponse:
    members = np.flatnonzero(seen.region == region_id)
    start = _offset(page_token, diagnosis_id, region_id, len(members))
    page = members[start:start + (page_size or DEFAULT_PAGE)]
    stop = start + len(page)
    rows = table.take(pa.array(page, pa.int64()))
    failed = seen.failed[page]
    if "probabilities" in rows.column_names and len(rows):
        flat = rows.column("probabilities").combine_chunks()
        probs = flat.flatten().to_numpy(zero_copy_only=False).reshape(len(rows), flat.type.list_size)
        predicted, confidence = probs.argmax(axis=1), probs.max(axis=1).astype(np.float64)
    else:
        predicted, confidence = np.full(len(rows), -1), np.full(len(rows), np.nan)
    return pb.ListRegionMembersResponse(
        diagnosis_id=diagnosis_id, region_id=region_id, total_size=len(members),
        next_page_token=_token(diagnosis_id, region_id, stop) if stop < len(members) else "",
        row_indices=page.tolist(), sample_ids=rows.column("sample_id").to_pylist(),
        uris=rows.column("uri").to_pylist(), labels=rows.column("label").to_numpy().astype(np.int32).tolist(),
        predicted=predicted.astype(np.int32).tolist(), confidence=confidence.tolist(),
        failed=failed.astype(bool).tolist(),
        metadata=[_metadata_column(name, kind, rows.column(META_PREFIX + name)) for name, kind in schema.items()],
        num_rows_diagnosed=int(seen.diagnosed.sum()), num_rows_in_run=table.num_rows)
