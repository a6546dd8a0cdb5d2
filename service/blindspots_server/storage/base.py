"""The storage interface: a catalog of runs, pools, diagnoses, jobs and
suggestion sets, plus row data (predictions, pool rows) and index blobs.

The embedded backend (SQLite + Parquet in one directory) implements it; a
PostgreSQL catalog with object-store row files can implement the same methods.
Row data crosses this boundary as pyarrow Tables in the canonical layout built
by :mod:`blindspots_server.storage.rows`.
"""
from __future__ import annotations

import abc
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import pyarrow as pa

if TYPE_CHECKING:
    from .rows import RowData


class NotFound(KeyError):
    """A run, pool, diagnosis or job id that the store does not hold."""


class Conflict(ValueError):
    """A write that contradicts what is stored (e.g. a metadata column's type)."""


# Metadata columns a run or pool may have, over all its batches: every read and every
# diagnosis handles each column, so the limit holds per run, not only per batch.
MAX_METADATA_COLUMNS = 512


class TooManyColumns(Conflict):
    """A batch whose new metadata columns would take its run or pool past MAX_METADATA_COLUMNS."""


class DataLoss(Exception):
    """Stored data that can no longer be read as written (damaged or missing files)."""


class StoreUnavailable(ConnectionError):
    """The catalog cannot be reached now (a database restarting, a network cut); retrying may work."""


class StoreUnusable(RuntimeError):
    """A data directory the store refuses to open, because opening it could lose data."""


class DuplicateSampleIds(ValueError):
    """A batch carries sample ids that earlier batches of the same run or pool stored
    with other content (the same id with the same content is a no-op, not this)."""

    def __init__(self, message: str, sample_id: str):
        super().__init__(message)
        self.sample_id = sample_id


def rows_not_stored(table: pa.Table, digests: list[str], stored: dict[str, str], target: str,
                    target_id: str) -> tuple[pa.Table, list[str]]:
    """The batch's rows whose ids ``stored`` (id -> content digest) lacks, with their digests;
    every backend's one rule for per-row idempotency.

    A row stored before with the same content is skipped (a pipeline re-sending rows under
    other batch ids stores nothing twice); one whose content differs raises
    :class:`DuplicateSampleIds` naming the first such id, and nothing of the batch is stored.
    """
    if not stored:
        return table, digests
    ids = table.column("sample_id").to_pylist()
    for sid, digest in zip(ids, digests):
        if sid in stored and stored[sid] != digest:
            why = ("was stored before row digests were kept, so its content cannot be compared"
                   if not stored[sid] else "is already stored with other content (label, probabilities, "
                   "embedding, uri or metadata)")
            raise DuplicateSampleIds(
                f"sample_ids: id {sid!r} {why} in {target} {target_id!r}; the same id with the same content "
                f"is skipped, with other content it is a conflict (nothing of this batch was stored)", sid)
    keep = [i for i, sid in enumerate(ids) if sid not in stored]
    return table.take(pa.array(keep, pa.int64())), [digests[i] for i in keep]



def merged_schema(stored: dict[str, str], batch: dict[str, str], target: str) -> dict[str, str]:
    """The target's metadata schema with a batch's columns added; every backend's one rule.

    A column whose type differs from earlier batches raises :class:`Conflict`; more
    than MAX_METADATA_COLUMNS over all batches raises :class:`TooManyColumns`.
    """
    for name, kind in batch.items():
        if stored.get(name, kind) != kind:
            raise Conflict(f"metadata: column {name!r} is {kind} in this batch but {stored[name]} in earlier batches")
    merged = {**stored, **batch}
    if len(merged) > MAX_METADATA_COLUMNS:
        raise TooManyColumns(
            f"metadata: this batch adds {len(merged) - len(stored)} new column(s) to the {len(stored)} the "
            f"{target} has; the limit is {MAX_METADATA_COLUMNS} per {target} (over all its batches)")
    return merged

@dataclass(frozen=True)
class RowFile:
    """One batch file of a run or pool: where a process other than the server can open it, and its rows.

    ``location`` is an absolute local path (the embedded store's directory, or a file root on a
    mount every node shares) or a URI (``s3://...``, any fsspec scheme) that
    :func:`.file_root.open_location` opens; the file is Parquet in the canonical row layout."""

    location: str
    rows: int


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
    request_id: str = ""              # CreateRunRequest.request_id: a repeated call gets this run


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
    request_id: str = ""              # CreatePoolRequest.request_id: a repeated call gets this pool


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
    pool_id: str = ""                 # an index build's pool ("" for a diagnosis)
    started_at: float = 0.0           # when it (last) started running; 0 while pending (and in older catalogs)


@dataclass(frozen=True)
class JobBacklog:
    """The jobs not finished yet, as the catalog holds them (with a shared catalog: every replica's)."""
    pending: int
    running: int
    oldest_pending_at: Optional[float]   # created_at of the job waiting longest; None when none waits


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
    request_id: str = ""      # SuggestRequest.request_id: a repeated call answers with this set


@dataclass
class LabelRecord:
    sample_id: str
    label: str                        # class name, as the labeling tool gave it
    source: str
    labeled_at: float                 # unix seconds


@dataclass
class LabelsOutcome:
    stored: int
    replaced: int                     # samples that had a label before
    total: int                        # labeled samples of the target afterwards


@dataclass
class IngestOutcome:
    stored: bool                      # False: nothing new (the batch id was seen before, or every row was)
    rows: int
    total_rows: int
    rows_already_stored: int = 0      # rows skipped: their ids were stored with the same content


@dataclass
class DeleteOutcome:
    """What deleting a run, pool or suggestion set removed (its catalog rows at once, its files
    right after)."""

    target: str                       # "run", "pool" or "suggestion_set"
    id: str
    rows: int                         # its stored rows (a suggestion set: its picks)
    diagnoses: int                    # of the run (0 for a pool)
    suggestion_sets: int              # made for the run, or from the pool
    labels: int                       # labels stored for its samples
    files: int                        # data files removed
    bytes: int                        # their size, as recorded at write


_NAMED_LOCKS_GUARD = threading.Lock()     # creates a store's named locks (Store.exclusive)


class Store(abc.ABC):
    """What the server needs from persistence. Methods are thread-safe."""

    # ---- runs and pools
    @abc.abstractmethod
    def create_run(self, run: RunRecord) -> RunRecord: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abc.abstractmethod
    def find_created(self, target: str, project: str, request_id: str) -> Optional["RunRecord | PoolRecord"]:
        """The run or pool (``target``) of ``project`` that the request ``request_id`` (not empty)
        created, if any."""

    @abc.abstractmethod
    def list_runs(self, projects: Optional[list[str]], limit: int, offset: int) -> list[RunRecord]: ...

    @abc.abstractmethod
    def create_pool(self, pool: PoolRecord) -> PoolRecord: ...

    @abc.abstractmethod
    def get_pool(self, pool_id: str) -> PoolRecord: ...

    @abc.abstractmethod
    def list_pools(self, projects: Optional[list[str]], limit: int, offset: int) -> list[PoolRecord]: ...

    def exists(self, target: str, target_id: str) -> bool:
        """Whether the store holds the run or pool ("run" / "pool"): a caller that met a
        NotFound or DataLoss part-way tells a deletion under it from damage."""
        try:
            (self.get_run if target == "run" else self.get_pool)(target_id)
            return True
        except NotFound:
            return False

    @abc.abstractmethod
    def delete(self, target: str, target_id: str, force: bool = False) -> DeleteOutcome:
        """Delete a run or pool ("run" / "pool") with everything stored for it: its rows, and
        for a run its diagnoses; the suggestion sets made for the run or from the pool, with
        the picks they hold (a later round may pick those pool rows again); its labels; a
        pool's index. Finished jobs of a run are forgotten with it.

        Atomic in the catalog: one transaction removes the rows and records the files to
        remove, which go next (a store that stops before they are gone removes them when it
        opens again). A write racing the delete either lands before it (and is deleted) or
        raises :class:`NotFound` and leaves no file. A run with a PENDING or RUNNING job raises
        :class:`Conflict` naming the job (cancel it first), and so does one holding labels from a
        labeling tool unless ``force`` (labels cost money: export them first); an unknown id
        :class:`NotFound`.
        """

    @abc.abstractmethod
    def stored_bytes(self, target: str, target_ids: list[str]) -> dict[str, int]:
        """Bytes of the data files each run or pool owns (as recorded at write): what deleting it
        would free. Ids the store does not hold count 0."""

    # ---- rows
    @abc.abstractmethod
    def ingest_batch(self, target: str, target_id: str, batch_id: str, table: pa.Table,
                     schema: dict[str, str]) -> IngestOutcome:
        """Durably store one batch for a run or pool ("run" / "pool").

        Atomic: after it returns the rows survive a crash; if it raises, nothing
        of the batch is visible. A batch id seen before stores nothing.
        ``schema`` is the batch's metadata column types; a type conflicting with
        earlier batches raises :class:`Conflict`, and new columns taking the target past
        MAX_METADATA_COLUMNS raise :class:`TooManyColumns`. Rows whose sample ids
        another batch of the target stored with the same content are skipped (counted in
        ``rows_already_stored``); with other content they raise :class:`DuplicateSampleIds`
        and nothing of the batch is stored (:func:`rows_not_stored`).
        """

    @abc.abstractmethod
    def read_rows(self, target: str, target_id: str, columns: Optional[list[str]] = None,
                  progress: Optional[Callable[[float, str], None]] = None) -> pa.Table:
        """All rows of a run or pool in ingestion order. ``progress(fraction, stage)`` is
        called between batch files and may raise to stop (a cancelled job)."""

    def read_row_data(self, target: str, target_id: str, columns: Optional[list[str]] = None,
                      progress: Optional[Callable[[float, str], None]] = None) -> "RowData":
        """The rows of :meth:`read_rows` as numpy arrays (:class:`.rows.RowData`).

        Backends read their batch files one at a time into arrays allocated once
        (:func:`.row_tables.read_target_row_data`) and cache nothing: the analysis
        steps that need every row (diagnose, index build, suggest) then hold each
        vector once, not a cached table next to the arrays made from it."""
        from .rows import to_row_data
        return to_row_data(self.read_rows(target, target_id, columns, progress))

    @abc.abstractmethod
    def row_files(self, target: str, target_id: str) -> list[RowFile]:
        """The batch files of a run or pool in row order: concatenated, their rows are those of
        :meth:`read_rows` (which may stop short of the last file when a batch was committed
        between the two calls). Lets a worker outside the server read rows by itself
        (:class:`.rows.ParquetEmbeddings`) instead of receiving them from the server."""

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
    def recent_diagnoses(self, limit: int) -> list[tuple[str, str, float]]:
        """``(run_id, diagnosis_id, created_at)`` of each run's latest diagnosis, for the
        ``limit`` runs diagnosed most recently, newest first (what the quality metrics export;
        one query, however many runs the store holds)."""

    @abc.abstractmethod
    def diagnosis_rows(self, diagnosis_id: str) -> pa.Table: ...

    # ---- jobs
    @abc.abstractmethod
    def save_job(self, job: JobRecord) -> None: ...

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord: ...

    @abc.abstractmethod
    def list_jobs(self, projects: Optional[list[str]], states: list[str], kind: str, run_id: str, pool_id: str,
                  limit: int, offset: int) -> list[JobRecord]:
        """Jobs newest first (created_at, then id), of ``states`` (empty: any) and ``kind`` ("": any),
        of ``run_id``'s run and ``pool_id``'s pool ("": any). ``projects`` (None: every one) keeps
        the jobs of those projects' runs and pools (a job whose pool was deleted has no project)."""

    @abc.abstractmethod
    def job_backlog(self) -> JobBacklog:
        """How many jobs are pending and running, and since when the oldest pending one waits."""

    @abc.abstractmethod
    def prune_jobs(self, finished_before: float) -> int:
        """Delete the records of finished jobs (SUCCEEDED, FAILED, CANCELLED) last updated before
        ``finished_before`` (epoch seconds), and say how many went. Pending and running jobs stay,
        however old; what a job made (a diagnosis, an index) is not a job record and stays too."""

    @abc.abstractmethod
    def last_used(self, ids: list[str], target: str) -> dict[str, float]:
        """When each run or pool (``target``) was last used (epoch seconds): the latest of its
        creation, its last ingest and its newest suggestion set, and for a run its newest diagnosis.
        Ids not there are left out."""

    @abc.abstractmethod
    def stale(self, target: str, unused_before: float) -> list:
        """The runs past ``run_retention_days``, or the pools past ``pool_retention_days``
        (``target``), oldest first: last used (:meth:`last_used`) before ``unused_before`` (epoch
        seconds), and not the newest of their group, which is kept however old: the newest run of
        each project and model name (runs without one count as one model), so that the model's next
        version has a run to be compared with; the newest pool of each project, so that the next
        round has a pool to pick from."""

    # ---- suggestion sets
    @abc.abstractmethod
    def save_suggestion_set(self, record: SuggestionSetRecord, candidates: pa.Table) -> None: ...

    @abc.abstractmethod
    def suggested_ids(self, run_id: str, pool_id: str) -> set[str]:
        """Pool sample ids suggested in earlier rounds for this run and pool."""

    @abc.abstractmethod
    def get_suggestion_set(self, set_id: str) -> SuggestionSetRecord:
        """The set's catalog record, without reading its file."""

    @abc.abstractmethod
    def read_suggestion_set(self, set_id: str, record: Optional[SuggestionSetRecord] = None
                            ) -> tuple[SuggestionSetRecord, pa.Table]:
        """The set's record and its candidates' table; ``record``, when the caller has just read
        it (``get_suggestion_set``, ``find_suggestion_set``), saves reading it again."""

    @abc.abstractmethod
    def delete_suggestion_set(self, set_id: str) -> "DeleteOutcome":
        """Delete one suggestion set: its record, its picks (later rounds may pick them again) and
        its file, as :meth:`delete` does a run's: the catalog in one transaction, the file right
        after (by the next open if the process stops first). NotFound for an unknown id."""

    @abc.abstractmethod
    def find_suggestion_set(self, run_id: str, pool_id: str, request_id: str) -> Optional[SuggestionSetRecord]:
        """The set of ``run_id`` and ``pool_id`` made by the request ``request_id`` (not empty), if any."""

    @abc.abstractmethod
    def list_suggestion_sets(self, run_id: str, pool_id: str, limit: int, offset: int) -> list[SuggestionSetRecord]:
        """The sets made for ``run_id`` and from ``pool_id`` (either may be "" for any; not both),
        oldest first (created_at, then id)."""

    # ---- labels (from a labeling tool, per run or pool sample)
    @abc.abstractmethod
    def unknown_sample_ids(self, target: str, target_id: str, sample_ids: list[str]) -> list[str]:
        """The given ids that no batch of the run or pool stored, in the given order."""

    @abc.abstractmethod
    def save_labels(self, target: str, target_id: str, sample_ids: list[str], labels: list[str],
                    source: str, labeled_at: float) -> LabelsOutcome:
        """Store labels in one transaction; a sample labeled before keeps the new label."""

    @abc.abstractmethod
    def read_labels(self, target: str, target_id: str) -> list[LabelRecord]:
        """Every stored label of the run or pool, oldest first."""

    @abc.abstractmethod
    def labeled_ids(self, target: str, target_id: str) -> set[str]: ...

    # ---- jobs claimed through a shared catalog
    # A store that several servers open at once (``shared``) also queues jobs: a
    # replica claims one with a lease it renews while it works; a job whose lease
    # ran out (its replica died) is claimed again by another. The embedded store
    # is opened by one process, which runs its jobs itself (server/jobs.py).
    shared: bool = False

    def enqueue_job(self, job: JobRecord, params: dict) -> None:
        """Store a PENDING job with what a replica needs to run it (JSON-able ``params``)."""
        raise NotImplementedError(f"{type(self).__name__} runs jobs in-process")

    def claim_job(self, owner: str, lease_s: float, max_attempts: int) -> Optional[tuple[JobRecord, dict]]:
        """The oldest PENDING job, or a RUNNING one whose lease expired, now RUNNING under ``owner``.

        A job already claimed ``max_attempts`` times is marked FAILED instead of
        being claimed again (so that a job that kills its replica cannot kill them all).
        """
        raise NotImplementedError(f"{type(self).__name__} runs jobs in-process")

    def update_claimed_job(self, job: JobRecord, owner: str, lease_s: float) -> bool:
        """Write the job's state and progress and extend its lease, if ``owner`` still holds it."""
        raise NotImplementedError(f"{type(self).__name__} runs jobs in-process")

    def renew_leases(self, owner: str, job_ids: list[str], lease_s: float) -> dict[str, bool]:
        """Extend the leases ``owner`` holds among ``job_ids``: {job id still held: cancel requested}.

        ``lease_s=0`` hands the jobs back: another replica may claim them at once.
        """
        raise NotImplementedError(f"{type(self).__name__} runs jobs in-process")

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a PENDING job now; ask the replica running a RUNNING one to stop."""
        raise NotImplementedError(f"{type(self).__name__} runs jobs in-process")

    # ---- mutual exclusion
    @contextmanager
    def exclusive(self, key: str, waiting: Optional[Callable[[], None]] = None) -> Iterator[None]:
        """Hold the lock named ``key`` for the block, against every holder of the same name that
        uses this store: this process's threads here; a shared store (PostgreSQL) reaches every
        replica. For work that reads and then writes what another call must not read in
        between (a suggestion round and the earlier picks it leaves out). ``waiting`` is called
        once, before blocking, when another holder has the lock (to say so)."""
        with _NAMED_LOCKS_GUARD:
            # name -> [lock, callers holding or waiting]: a name no caller uses is dropped (one name
            # per run and pool would otherwise stay for the life of the server).
            entry = self.__dict__.setdefault("_named_locks", {}).setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        lock = entry[0]
        try:
            if not lock.acquire(blocking=False):
                if waiting is not None:
                    waiting()
                lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            with _NAMED_LOCKS_GUARD:
                entry[1] -= 1
                if entry[1] == 0:
                    del self.__dict__["_named_locks"][key]

    # ---- housekeeping
    @abc.abstractmethod
    def size_bytes(self) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...
