"""Storage behind a small interface (:mod:`.base`), chosen by URI (:mod:`.registry`)."""
from __future__ import annotations

from .base import (MAX_METADATA_COLUMNS, Conflict, DataLoss, DeleteOutcome, DiagnosisRecord, DuplicateSampleIds, IngestOutcome,
                   JobBacklog, JobRecord, LabelRecord, LabelsOutcome, NotFound, PoolRecord, RowFile, RunRecord, Store,
                   StoreUnavailable, StoreUnusable, SuggestionSetRecord, TooManyColumns)
from .embedded import EmbeddedStore, new_id
from .registry import open_store, register_store, store_schemes

__all__ = ["MAX_METADATA_COLUMNS", "Conflict", "DataLoss", "DeleteOutcome", "DiagnosisRecord", "DuplicateSampleIds", "EmbeddedStore",
           "IngestOutcome", "JobBacklog", "JobRecord", "LabelRecord", "LabelsOutcome", "NotFound", "PoolRecord", "RowFile",
           "RunRecord", "Store", "StoreUnavailable", "StoreUnusable", "SuggestionSetRecord", "TooManyColumns",
           "new_id", "open_store", "register_store", "store_schemes"]
