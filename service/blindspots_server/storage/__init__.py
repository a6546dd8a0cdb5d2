"""Storage behind a small interface; see :mod:`.base`."""
from __future__ import annotations

from .base import (Conflict, DataLoss, DiagnosisRecord, DuplicateSampleIds, IngestOutcome, JobRecord, NotFound,
                   PoolRecord, RunRecord, Store, StoreUnusable, SuggestionSetRecord)
from .embedded import EmbeddedStore, new_id


def open_store(location: str) -> Store:
    """Open the store named by a path or URL.

    A plain path or ``file://`` URL opens the embedded store (SQLite catalog +
    Parquet files). ``postgresql://`` catalogs with object-store row files are
    planned; the interface in :mod:`.base` is what they implement.
    """
    if location.startswith("file://"):
        location = location[len("file://"):]
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ValueError(f"storage backend {scheme!r} is not available yet; use a local directory path")
    return EmbeddedStore(location)


__all__ = ["Conflict", "DataLoss", "DiagnosisRecord", "DuplicateSampleIds", "EmbeddedStore", "IngestOutcome", "JobRecord",
           "NotFound", "PoolRecord", "RunRecord", "Store", "StoreUnusable", "SuggestionSetRecord", "new_id", "open_store"]
