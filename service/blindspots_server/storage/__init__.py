"""Storage behind a small interface (:mod:`.base`), chosen by URI (:mod:`.registry`)."""
from __future__ import annotations

from .base import (Conflict, DataLoss, DiagnosisRecord, DuplicateSampleIds, IngestOutcome, JobRecord, NotFound,
                   PoolRecord, RunRecord, Store, StoreUnavailable, StoreUnusable, SuggestionSetRecord)
from .embedded import EmbeddedStore, new_id
from .registry import open_store, register_store, store_schemes

__all__ = ["Conflict", "DataLoss", "DiagnosisRecord", "DuplicateSampleIds", "EmbeddedStore", "IngestOutcome", "JobRecord",
           "NotFound", "PoolRecord", "RunRecord", "Store", "StoreUnavailable", "StoreUnusable", "SuggestionSetRecord",
           "new_id", "open_store", "register_store", "store_schemes"]
