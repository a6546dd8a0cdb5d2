"""The storage interface: a catalog of runs, pools, diagnoses, jobs and
suggestion sets, plus row data (predictions, pool rows) and index blobs.

The embedded backend (SQLite + Parquet in one directory) implements it; a
PostgreSQL catalog with object-store row files can implement the same methods.
Row data crosses this boundary as pyarrow Tables in the canonical layout built
by :mod:`blindspots_server.storage.rows`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Optional

import pyarrow as pa


class NotFound(KeyError):
    """A run, pool, diagnosis or job id that the store does not hold."""


class Conflict(ValueError):
    """A write that contradicts what is stored (e.g. a metadata column's type)."""


class DataLoss(Exception):
    """Stored data that can no longer be read as written (damaged or missing files)."""


class StoreUnusable(RuntimeError):
    """A data directory the store refuses to open, because opening it could lose data."""


class DuplicateSampleIds(ValueError):
    """A batch carries sample ids that earlier batches of the same run or pool stored."""

    def __init__(self, message: str, sample_id: str):
        super().__init__(message)
        self.sample_id = sample_id


@dataclass
class RunRecord:
    id: str
    name: str
    project: str
    model_name: str
    model_version: str
    dataset_name: str
    class_names: list[str]
    embedding_dim: int
    created_at: float                 # unix seconds
    num_rows: int = 0
    metadata_schema: dict[str, str] = field(default_factory=dict)   # column -> string|number|timestamp


@dataclass
class PoolRecord:
    id: str
    name: str
    project: str
    embedding_dim: int
    num_classes: int
    created_at: float
    num_rows: int = 0
    metadata_schema: dict[str, str] = field(default_factory=dict)
    index_kind: str = ""
    index_rows: int = 0
    index_description: str = ""


@dataclass
class DiagnosisRecord:
    id: str
    run_id: str
    created_at: float
    job_id: str
    payload: bytes                    # serialized API message, opaque to the store


@dataclass
class JobRecord:
    id: str
    kind: str
    run_id: str
    state: str                        # PENDING RUNNING SUCCEEDED FAILED CANCELLED
    fraction_done: float
    stage: str
    result_id: str
    error: str
    created_at: float
    updated_at: float


@dataclass
class SuggestionSetRecord:
    id: str
    run_id: str
    pool_id: str
    diagnosis_id: str
    strategy: str
    budget: int
    num_candidates: int
    created_at: float
    name: str


@dataclass
class IngestOutcome:
    stored: bool                      # False: the batch id was seen before
    rows: int
    total_rows: int


class Store(abc.ABC):
    """What the server needs from persistence. Methods are thread-safe."""

    # ---- runs and pools
    @abc.abstractmethod
    def create_run(self, run: RunRecord) -> RunRecord: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abc.abstractmethod
    def list_runs(self, projects: Optional[list[str]], limit: int, offset: int) -> list[RunRecord]: ...

    @abc.abstractmethod
    def create_pool(self, pool: PoolRecord) -> PoolRecord: ...

    @abc.abstractmethod
    def get_pool(self, pool_id: str) -> PoolRecord: ...

    @abc.abstractmethod
    def list_pools(self, projects: Optional[list[str]], limit: int, offset: int) -> list[PoolRecord]: ...

    # ---- rows
    @abc.abstractmethod
    def ingest_batch(self, target: str, target_id: str, batch_id: str, table: pa.Table,
                     schema: dict[str, str]) -> IngestOutcome:
        """Durably store one batch for a run or pool ("run" / "pool").

        Atomic: after it returns the rows survive a crash; if it raises, nothing
        of the batch is visible. A batch id seen before stores nothing.
        ``schema`` is the batch's metadata column types; a type conflicting with
        earlier batches raises :class:`Conflict`. A sample id already stored
        by another batch of the target raises :class:`DuplicateSampleIds`.
        """

    @abc.abstractmethod
    def read_rows(self, target: str, target_id: str, columns: Optional[list[str]] = None) -> pa.Table:
        """All rows of a run or pool in ingestion order."""

    # ---- pool index blobs
    @abc.abstractmethod
    def save_index(self, pool_id: str, data: bytes, kind: str, rows: int, description: str) -> None: ...

    @abc.abstractmethod
    def load_index(self, pool_id: str) -> Optional[bytes]: ...

    # ---- diagnoses
    @abc.abstractmethod
    def save_diagnosis(self, record: DiagnosisRecord, per_sample: pa.Table) -> None:
        """Store a diagnosis; ``per_sample`` has one row per test row (region, failed)."""

    @abc.abstractmethod
    def get_diagnosis(self, diagnosis_id: str) -> DiagnosisRecord: ...

    @abc.abstractmethod
    def latest_diagnosis(self, run_id: str) -> DiagnosisRecord: ...

    @abc.abstractmethod
    def list_diagnoses(self, run_id: str) -> list[DiagnosisRecord]: ...

    @abc.abstractmethod
    def diagnosis_rows(self, diagnosis_id: str) -> pa.Table: ...

    # ---- jobs
    @abc.abstractmethod
    def save_job(self, job: JobRecord) -> None: ...

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord: ...

    # ---- suggestion sets
    @abc.abstractmethod
    def save_suggestion_set(self, record: SuggestionSetRecord, candidates: pa.Table) -> None: ...

    @abc.abstractmethod
    def suggested_ids(self, run_id: str, pool_id: str) -> set[str]:
        """Pool sample ids suggested in earlier rounds for this run and pool."""

    @abc.abstractmethod
    def read_suggestion_set(self, set_id: str) -> tuple[SuggestionSetRecord, pa.Table]: ...

    # ---- housekeeping
    @abc.abstractmethod
    def size_bytes(self) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...
