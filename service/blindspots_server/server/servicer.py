"""gRPC handlers: validate, call core and storage, translate the answer.

Errors are raised as exceptions and mapped to status codes by
:class:`.errors.ErrorMappingInterceptor`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import re
import threading
import time
from importlib import metadata
from itertools import islice
from typing import Callable, Iterator, Optional
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc

from ..config import ServerConfig
from ..core.diagnosis import Diagnoser
from ..core.embedding_map import ClusteringSpaceLayout
from ..core.parallel import WorkerLost
from ..core.pool_index import index_device
from ..core.tracked_slices import evaluate_slices
from ..ray_cluster import connect as connect_compute
from ..core.suggest import STRATEGIES, MetadataFilterSpec
from ..storage import DataLoss, DiagnosisRecord, NotFound, PoolRecord, RunRecord, Store, SuggestionSetRecord, new_id
from . import convert
from .access import AccessPolicy
from .comparison import DEFAULT_ALPHA, DEFAULT_MIN_OVERLAP, compare_runs
from .errors import DISK_FULL, FailedPrecondition, ResourceExhausted, is_disk_full
from .job_claims import job_runner_for
from .jobs import JOB_KINDS, JobCancelled
from .labels import import_labels, list_labels
from .pool_indexes import PoolIndexes
from .tracing import Tracing
from .region_members import RegionMembers
from .run_map import MAX_POINTS, run_map_message
from .slice_tracking import diagnosed_versions, slices_to_track
from .suggestion_sets import candidates as set_candidates, set_message
from .suggestions import Suggestions, check_region_ids
from .telemetry import Telemetry
from .validation import (MAX_SEED, InvalidArgument, TargetShape, check_diagnosis_params, check_name, require,
                         validate_batch)

log = logging.getLogger("blindspots.server")
# A new diagnosis is compared with the newest earlier version of its model that shares test rows
# with it, among this many (each try reads that version's per-row table).
MAX_BASELINES = 10

DEFAULT_PROJECT = "default"
MAX_PAGE = 1000
CANDIDATE_BATCH = 500
SET_PAGE, MAX_SET_PAGE = 1000, 10000     # GetSuggestionSet's candidates per page: default, most
PROGRESS_EVERY_S = 0.25      # Suggest's progress messages within one step
MAX_OFFSET = 1 << 53           # far beyond any listing, and inside SQLite's 64-bit OFFSET
MAX_REQUEST_ATTEMPTS = 20      # Diagnose: new jobs for one request id whose earlier ones failed
try:
    SERVER_VERSION = metadata.version("blindspots-server")
except metadata.PackageNotFoundError:      # run from a source tree that was never installed
    SERVER_VERSION = "unknown"


class ProgressThrottle:
    """Which of Suggest's progress stages go to the client.

    Every new step is sent; repeats of one step ("loading pool rows: batch file i of n" for a
    pool of thousands of files) at most once per ``every_s``. A step is the stage with the
    numbers after its colon blanked, so the first "batch file 1 of n" is always sent after the
    bare "loading pool rows", however fast the files are read, and "selecting pool samples
    near region 3" (no colon) is a step of its own.
    """

    def __init__(self, every_s: float = PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._step: Optional[str] = None
        self._at = 0.0

    def should_send(self, stage: str) -> bool:
        head, colon, detail = stage.partition(":")
        step = head + colon + re.sub(r"\d+", "#", detail)
        now = self.clock()
        if step != self._step or now - self._at >= self.every_s:
            self._step, self._at = step, now
            return True
        return False


def _note_stream_position(exc: Exception, response: pb.IngestResponse) -> None:
    """Say in a rejected stream's error which batches were already stored.

    Each batch is atomic and acknowledged when stored, so a stream whose batch
    k fails keeps batches 1..k-1; the client re-sends from batch k (re-sent
    batch ids are deduplicated).
    """
    if isinstance(exc, InvalidArgument) and exc.field == "requests":
        return
    index = response.batches_received
    if index:
        note = (f"batch {index + 1} of the stream was rejected and not stored; the "
                f"{response.batches_received} batches before it ({response.rows_received} rows) were stored")
    else:
        note = f"batch {index + 1} of the stream was rejected; nothing of the stream was stored"
    exc.args = (f"{exc.args[0] if exc.args else exc} [{note}]", *exc.args[1:])


class BlindspotsServicer(pb_grpc.BlindspotsServicer):
    def __init__(self, store: Store, config: ServerConfig, access: Optional[AccessPolicy] = None,
                 telemetry: Optional[Telemetry] = None, tracing: Optional[Tracing] = None):
        self.store = store
        self.config = config
        self.access = access or AccessPolicy()
        self.telemetry = telemetry or Telemetry.disabled()
        self.tracing = tracing or Tracing.off()
        self.jobs = job_runner_for(store, config, on_finish=self.telemetry.job_finished,
                                   on_start=self.telemetry.job_started)
        self.jobs.register("index_build", self._traced(
            "index_build", lambda _job_id, params, progress: self._build_index(params["pool_id"], progress)))
        self.jobs.register("diagnose", self._traced("diagnose", self._diagnose_job))
        self.jobs.start()
        self.compute = connect_compute(config.ray_address, config.ray_shard_gpus, config.ray_shard_threads)
        shards = config.index_shards or (self.compute.nodes() if config.ray_address else 1)
        self.indexes = PoolIndexes(store, shards=shards, compute=self.compute,
                                   memory_bytes=config.index_memory_mb << 20, on_evict=self.telemetry.index_evicted,
                                   shard_memory_bytes=config.shard_memory_mb << 20, on_shards=self.telemetry.shards_held)
        self.telemetry.track_index_memory(self.indexes.loaded_bytes)
        self.suggestions = Suggestions(store, self.indexes)
        self.members = RegionMembers(store)

    def _traced(self, kind: str, handler):
        """``handler`` run inside a span of its job, under the call that submitted it (its params'
        ``trace``: that call's W3C headers, from :meth:`_submit`)."""
        def run(job_id: str, params: dict, progress):
            with self.tracing.job(kind, job_id, params.get("trace")):
                return handler(job_id, params, progress)
        return run

    def _submit(self, kind: str, run_id: str, params: dict, job_id: str = "", pool_id: str = ""):
        """Submit a job; with tracing on, its params carry the calling span's context (a job run by
        another replica joins the same trace). Job ids never derive from it."""
        trace = self.tracing.current()
        return self.jobs.submit(kind, run_id, {**params, "trace": trace} if trace else params, job_id=job_id,
                                pool_id=pool_id)

    # ------------------------------------------------------------ access helpers
    def _run(self, run_id: str, context, missing: str = "") -> RunRecord:
        """The run, if the caller may see it. One outside the caller's projects is NOT_FOUND
        with the message a missing id gets (``missing`` when the caller asked for another
        object by id, e.g. a diagnosis), so that ids cannot be probed across projects."""
        require(bool(run_id), "run_id", "is required")
        run = self.store.get_run(run_id)
        if not self.access.allows(context, run.project):
            raise NotFound(missing or f"run {run_id!r} not found")
        return run

    def _suggestion_set_access(self, set_id: str, context) -> SuggestionSetRecord:
        """The set's record; NOT_FOUND, as for a missing id, for a set of another project (its run's)."""
        record = self.store.get_suggestion_set(set_id)
        self._run(record.run_id, context, f"suggestion set {set_id!r} not found")
        return record

    def _pool(self, pool_id: str, context, missing: str = "") -> PoolRecord:
        """The pool, if the caller may see it (as :meth:`_run`)."""
        require(bool(pool_id), "pool_id", "is required")
        try:
            pool = self.store.get_pool(pool_id)
        except NotFound:
            if missing:
                raise NotFound(missing) from None
            raise
        if not self.access.allows(context, pool.project):
            raise NotFound(missing or f"pool {pool_id!r} not found")
        return pool

    @staticmethod
    def _page(size: int, token: str) -> tuple[int, int]:
        require(0 <= size <= MAX_PAGE, "page_size", f"must be between 0 and {MAX_PAGE}")
        try:
            offset = int(token) if token else 0
        except ValueError:
            raise InvalidArgument("page_token", "is not a token this server issued") from None
        require(0 <= offset <= MAX_OFFSET, "page_token", "is not a token this server issued")
        return (size or 100), offset

    @staticmethod
    def _one_page(records: list, limit: int, offset: int) -> tuple[list, str]:
        """A listing read with ``limit + 1`` rows from ``offset``: the page, and the next page's
        token ("" when this is the last)."""
        return records[:limit], (str(offset + limit) if len(records) > limit else "")

    # ------------------------------------------------------------ runs
    def CreateRun(self, request: pb.CreateRunRequest, context) -> pb.Run:
        check_name(request.name, "name")
        project = request.project or DEFAULT_PROJECT
        check_name(project, "project")
        self.access.check(context, project)
        require(request.embedding_dim > 0, "embedding_dim", "must be positive")
        require(request.embedding_dim <= 65536, "embedding_dim", "must be at most 65536")
        require(len(request.class_names) >= 2, "class_names", "needs at least two classes")
        require(len(set(request.class_names)) == len(request.class_names), "class_names", "has duplicates")
        for i, name in enumerate(request.class_names):
            check_name(name, f"class_names[{i}]")
        for field in ("model_name", "model_version", "dataset_name"):
            check_name(getattr(request, field), field, required=False)
        run = RunRecord(id=new_id("run"), name=request.name, project=project, model_name=request.model_name,
                        model_version=request.model_version, dataset_name=request.dataset_name,
                        class_names=list(request.class_names), embedding_dim=request.embedding_dim,
                        created_at=time.time(), request_id=request.request_id)
        return convert.run_message(self._create_once("run", run, self.store.create_run, (
            "name", "model_name", "model_version", "dataset_name", "class_names", "embedding_dim")))

    def GetRun(self, request: pb.GetRunRequest, context) -> pb.Run:
        run = self._run(request.run_id, context)
        return convert.run_message(run, self.store.stored_bytes("run", [run.id])[run.id],
                                   self.store.last_used([run.id], "run").get(run.id))

    def ListRuns(self, request: pb.ListRunsRequest, context) -> pb.ListRunsResponse:
        limit, offset = self._page(request.page_size, request.page_token)
        projects = self._visible(request.project, context)
        runs, token = self._one_page(self.store.list_runs(projects, limit + 1, offset), limit, offset)
        sizes = self.store.stored_bytes("run", [r.id for r in runs])
        used = self.store.last_used([r.id for r in runs], "run")
        return pb.ListRunsResponse(runs=[convert.run_message(r, sizes.get(r.id, 0), used.get(r.id)) for r in runs],
                                   next_page_token=token)

    def _visible(self, project: str, context) -> Optional[list[str]]:
        if project:
            self.access.check(context, project)
            return [project]
        return self.access.projects(context)

    # ------------------------------------------------------------ pools
    def CreatePool(self, request: pb.CreatePoolRequest, context) -> pb.Pool:
        check_name(request.name, "name")
        project = request.project or DEFAULT_PROJECT
        check_name(project, "project")
        self.access.check(context, project)
        require(0 < request.embedding_dim <= 65536, "embedding_dim", "must be between 1 and 65536")
        require(request.num_classes == 0 or 2 <= request.num_classes <= 100_000, "num_classes",
                "must be 0 (no probabilities) or between 2 and 100000")
        pool = PoolRecord(id=new_id("pool"), name=request.name, project=project,
                          embedding_dim=request.embedding_dim, num_classes=request.num_classes,
                          created_at=time.time(), request_id=request.request_id)
        return convert.pool_message(self._create_once("pool", pool, self.store.create_pool,
                                                      ("name", "embedding_dim", "num_classes")))

    def _create_once(self, target: str, record, create, asked: tuple[str, ...]):
        """``create(record)``, unless ``record.request_id`` (when set) already created a run or pool
        of its project: then that one, if it was asked for with the same ``asked`` fields."""
        check_name(record.request_id, "request_id", required=False)
        if not record.request_id:
            return create(record)
        with self.store.exclusive(f"create/{target}/{record.project}/{record.request_id}"):
            earlier = self.store.find_created(target, record.project, record.request_id)
            if earlier is None:
                return create(record)
        differ = [f"{f} {getattr(earlier, f)!r}, not {getattr(record, f)!r}" for f in asked
                  if getattr(earlier, f) != getattr(record, f)]
        require(not differ, "request_id", f"{record.request_id!r} already created {target} {earlier.id!r} with "
                f"{'; '.join(differ)}: use a new request_id")
        return earlier

    def GetPool(self, request: pb.GetPoolRequest, context) -> pb.Pool:
        pool = self._pool(request.pool_id, context)
        return convert.pool_message(pool, self.store.stored_bytes("pool", [pool.id])[pool.id],
                                    self.store.last_used([pool.id], "pool").get(pool.id))

    def ListPools(self, request: pb.ListPoolsRequest, context) -> pb.ListPoolsResponse:
        limit, offset = self._page(request.page_size, request.page_token)
        pools, token = self._one_page(self.store.list_pools(self._visible(request.project, context), limit + 1, offset),
                                      limit, offset)
        sizes = self.store.stored_bytes("pool", [p.id for p in pools])
        used = self.store.last_used([p.id for p in pools], "pool")
        return pb.ListPoolsResponse(pools=[convert.pool_message(p, sizes.get(p.id, 0), used.get(p.id)) for p in pools],
                                    next_page_token=token)

    # ------------------------------------------------------------ deletion
    def DeleteRun(self, request: pb.DeleteRunRequest, context) -> pb.DeleteResponse:
        return self.delete_target("run", self._run(request.run_id, context).id, request.force)

    def GetServerInfo(self, request: pb.GetServerInfoRequest, context) -> pb.ServerInfo:
        projects = self.access.projects(context)
        return pb.ServerInfo(
            version=SERVER_VERSION, store=urlparse(self.config.store).scheme or "embedded", compute=self.compute.name,
            index_shards=self.indexes.shards, max_budget=self.config.max_budget,
            max_batch_rows=self.config.max_batch_rows, max_message_bytes=self.config.max_message_mb << 20,
            strategies=list(STRATEGIES), auth=self.access.auth, all_projects=projects is None,
            projects=sorted(projects or []), read_only=self.access.read_only(context),
            job_retention_days=self.config.job_retention_days, run_retention_days=self.config.run_retention_days,
            pool_retention_days=self.config.pool_retention_days, index_device=index_device()[0],
            ray_shard_gpus=self.config.ray_shard_gpus)

    def DeletePool(self, request: pb.DeletePoolRequest, context) -> pb.DeleteResponse:
        return self.delete_target("pool", self._pool(request.pool_id, context).id, request.force)

    def delete_target(self, target: str, target_id: str, force: bool) -> pb.DeleteResponse:
        """Delete a run or pool (DeleteRun, DeletePool, retention): the store's rows and files,
        a pool's loaded index, the run's series, a log line."""
        out = self.store.delete(target, target_id, force=force)
        if target == "pool":
            self.indexes.forget(target_id)
        self.telemetry.deleted(target, target_id, out.bytes)
        log.info("deleted %s %s: %d rows, %d files (%d bytes)", target, target_id, out.rows, out.files, out.bytes)
        return pb.DeleteResponse(id=out.id, rows=out.rows, diagnoses=out.diagnoses,
                                 suggestion_sets=out.suggestion_sets, labels=out.labels, files=out.files,
                                 bytes=out.bytes)

    # ------------------------------------------------------------ ingest
    def _ingest(self, target: str, requests: Iterator[pb.IngestBatch], context) -> pb.IngestResponse:
        response = pb.IngestResponse()
        try:
            return self._ingest_stream(target, requests, context, response)
        except Exception as exc:
            if is_disk_full(exc):
                log.error("ingest into %s: disk full: %s", target, exc)
                exc = ResourceExhausted(DISK_FULL)
            _note_stream_position(exc, response)
            raise exc from None

    def _ingest_stream(self, target: str, requests: Iterator[pb.IngestBatch], context,
                       response: pb.IngestResponse) -> pb.IngestResponse:
        target_id = ""
        shape: Optional[TargetShape] = None
        project = ""
        for i, msg in enumerate(requests):
            given = msg.run_id if target == "run" else msg.pool_id
            field = "run_id" if target == "run" else "pool_id"
            if shape is None:
                require(bool(given), field, "is required in the first message of the stream")
                if target == "run":
                    rec = self._run(given, context)
                    shape = TargetShape("run", rec.embedding_dim, len(rec.class_names),
                                        self.config.max_batch_rows)
                else:
                    rec = self._pool(given, context)
                    shape = TargetShape("pool", rec.embedding_dim, rec.num_classes, self.config.max_batch_rows)
                target_id, project = given, rec.project
            else:
                require(not given or given == target_id, field,
                        f"message {i} names {given!r} but the stream is for {target_id!r}")
            batch = validate_batch(msg, shape)
            outcome = self.store.ingest_batch(target, target_id, batch.batch_id, batch.table, batch.schema)
            response.batches_received += 1
            response.rows_received += batch.rows
            response.rows_already_stored += outcome.rows_already_stored
            if outcome.stored:
                new_rows = batch.rows - outcome.rows_already_stored
                response.rows_stored += new_rows
                self.telemetry.rows_ingested(target, new_rows, batch.nbytes)
            else:
                response.batches_duplicate += 1
            response.total_rows = outcome.total_rows
        require(shape is not None, "requests", "the stream carried no batch")
        if target == "pool" and response.rows_stored:
            self._submit("index_build", "", {"pool_id": target_id}, pool_id=target_id)
        log.debug("ingested %d rows into %s %s (project %s)", response.rows_stored, target, target_id, project)
        return response

    def IngestPredictions(self, request_iterator, context) -> pb.IngestResponse:
        return self._ingest("run", request_iterator, context)

    def IngestPool(self, request_iterator, context) -> pb.IngestResponse:
        return self._ingest("pool", request_iterator, context)

    def _build_index(self, pool_id: str, progress) -> str:
        try:
            index = self.indexes.update(pool_id, progress)
        except (NotFound, DataLoss):         # its row files went with it, mid-read
            if self.store.exists("pool", pool_id):
                raise
            # Deleted while its index was being built (a build follows every ingest): nothing
            # failed, there is nothing left to index.
            raise JobCancelled(f"pool {pool_id!r} was deleted") from None
        self.telemetry.index_size(pool_id, index.ntotal)
        return pool_id

    # ------------------------------------------------------------ jobs
    def _job_access(self, job, context) -> None:
        missing = f"job {job.id!r} not found"
        if self.access.projects(context) is None:
            return                  # every project, and the jobs of deleted runs and pools
        if job.run_id:
            self._run(job.run_id, context, missing)
        elif job.pool_id:
            self._pool(job.pool_id, context, missing)
        else:
            # Index builds from before jobs named their pool carry no project: only callers
            # that may read every project see them.
            raise NotFound(missing)

    def GetJob(self, request: pb.GetJobRequest, context) -> pb.Job:
        require(bool(request.job_id), "job_id", "is required")
        job = self.jobs.get(request.job_id)
        self._job_access(job, context)
        return convert.job_message(job)

    def WatchJob(self, request: pb.GetJobRequest, context) -> Iterator[pb.Job]:
        job = self.jobs.get(request.job_id) if request.job_id else None
        require(job is not None, "job_id", "is required")
        self._job_access(job, context)
        yield convert.job_message(job)
        while job.state not in ("SUCCEEDED", "FAILED", "CANCELLED") and context.is_active():
            newer = self.jobs.wait_change(job.id, job.updated_at, timeout=1.0)
            if newer.updated_at > job.updated_at or newer.state != job.state:
                yield convert.job_message(newer)
            job = newer

    def CancelJob(self, request: pb.GetJobRequest, context) -> pb.Job:
        require(bool(request.job_id), "job_id", "is required")
        job = self.jobs.get(request.job_id)
        self._job_access(job, context)
        return convert.job_message(self.jobs.cancel(job.id))

    def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        limit, offset = self._page(request.page_size, request.page_token)
        known = set(pb.Job.State.values()) - {pb.Job.STATE_UNSPECIFIED}
        require(set(request.states) <= known, "states", "must name job states (PENDING ... CANCELLED)")
        states = [pb.Job.State.Name(s) for s in dict.fromkeys(request.states)]
        require(request.kind in ("", *JOB_KINDS), "kind", f"must be one of {', '.join(JOB_KINDS)}, or empty")
        if request.run_id:
            self._run(request.run_id, context)          # NOT_FOUND for a run the caller may not read
        if request.pool_id:
            self._pool(request.pool_id, context)
        projects = self._visible(request.project, context)
        jobs = self.store.list_jobs(projects, states, request.kind, request.run_id, request.pool_id, limit + 1,
                                    offset)
        page, token = self._one_page(jobs, limit, offset)
        return pb.ListJobsResponse(jobs=[convert.job_message(j) for j in self.jobs.current(page)],
                                   next_page_token=token)

    # ------------------------------------------------------------ diagnosis
    def Diagnose(self, request: pb.DiagnoseRequest, context) -> pb.Job:
        run = self._run(request.run_id, context)
        require(run.num_rows > 0, "run_id", f"run {run.id!r} has no predictions yet")
        p = request.params
        check_diagnosis_params(p, run.num_rows, run.embedding_dim)
        kwargs = convert.diagnoser_kwargs(p)
        params = {"run_id": run.id, "kwargs": kwargs}
        check_name(request.request_id, "request_id", required=False)
        if not request.request_id:
            return convert.job_message(self._submit("diagnose", run.id, params))
        # The job's id follows from the request (run, request id, params): a repeat finds the job.
        # Run ids are never reused, so neither are these.
        request_key = json.dumps([run.id, request.request_id, kwargs], sort_keys=True)
        with self.store.exclusive(f"diagnose/{run.id}/{request.request_id}"):
            for attempt in range(MAX_REQUEST_ATTEMPTS):
                job_id = "job_" + hashlib.sha256(f"{request_key}/{attempt}".encode()).hexdigest()[:16]
                try:
                    earlier = self.jobs.get(job_id)
                except NotFound:
                    return convert.job_message(self._submit("diagnose", run.id, params, job_id=job_id))
                if earlier.state not in ("FAILED", "CANCELLED"):
                    return convert.job_message(earlier)
        raise FailedPrecondition(f"request_id {request.request_id!r}: {MAX_REQUEST_ATTEMPTS} diagnoses asked for "
                                 "with it failed or were cancelled; use a new request_id")

    def _diagnose_job(self, job_id: str, params: dict, progress) -> str:
        return self._diagnose(self.store.get_run(params["run_id"]), params["kwargs"], job_id, progress)

    def _diagnose(self, run: RunRecord, kwargs: dict, job_id: str, progress) -> str:
        progress(0.0, "loading predictions")
        rows = self.store.read_row_data(
            "run", run.id, progress=lambda f, stage: progress(0.04 * f, f"loading predictions: {stage}"))
        progress(0.04, "loaded predictions")
        diagnoser = Diagnoser(**kwargs, compute=self.compute)
        result = diagnoser.fit(rows.embeddings, rows.labels, rows.probabilities, rows.metadata,
                               sample_ids=rows.sample_ids, uris=rows.uris, progress=progress)
        progress(0.97, "laying out the map")
        layout = ClusteringSpaceLayout(seed=int(kwargs.get("seed", 0))).fit(diagnoser.clusters_.reduced)
        progress(0.98, "evaluating tracked slices")
        diag_id = new_id("diag")
        created = time.time()
        message = convert.diagnosis_message(result, diag_id, run, job_id, created)
        k = self.config.metrics_top_k
        tracked = slices_to_track(self.store, run, per_run=k, limit=2 * k, exclude={s.name for s in message.slices})
        message.tracked_slices.extend(
            convert.slice_message(s) for s in
            evaluate_slices(tracked, rows.metadata, result.failed, result.baseline_error_rate))
        per_sample = pa.table({"sample_id": pa.array([str(s) for s in rows.sample_ids], pa.string()),
                               "region": pa.array(np.asarray(result.region_of_sample, dtype=np.int32)),
                               "failed": pa.array(np.asarray(result.failed, dtype=bool)),
                               "map_x": pa.array(layout[:, 0]), "map_y": pa.array(layout[:, 1])})
        progress(0.985, "comparing with the previous version")
        self._compare_with_previous(run, message, per_sample, rows.metadata, rows.labels)
        progress(0.99, "saving the diagnosis")    # the last point where a cancel still stops it
        self.store.save_diagnosis(DiagnosisRecord(id=diag_id, run_id=run.id, created_at=created, job_id=job_id,
                                                  payload=message.SerializeToString()), per_sample)
        self.telemetry.diagnosis_saved(run, message)
        return diag_id

    def _compare_with_previous(self, run: RunRecord, message: pb.Diagnosis, per_sample: pa.Table,
                               metadata: pd.DataFrame, labels: np.ndarray) -> None:
        """Set ``message.previous_version``: the new diagnosis against the previous version of
        the run's model, the newest earlier diagnosed run of it that shares test rows with it
        (of the ``MAX_BASELINES`` newest). A baseline deleted or damaged meanwhile is passed
        over (logged): the diagnosis itself is whole without it."""
        for baseline, baseline_diagnosis in islice(diagnosed_versions(self.store, run, created_before=True),
                                                   MAX_BASELINES):
            try:
                message.previous_version.CopyFrom(compare_runs(
                    self.store, baseline, run, baseline_diagnosis, message, DEFAULT_MIN_OVERLAP, DEFAULT_ALPHA,
                    per_b=per_sample, metadata_b=metadata, labels_b=labels))
                return
            except FailedPrecondition:
                continue            # another test set: nothing to compare on
            except (NotFound, DataLoss) as exc:
                log.warning("run %s: not compared with run %s, an earlier version (%s)", run.id, baseline.id, exc)

    def _diagnosis(self, diagnosis_id: str, run_id: str, context) -> pb.Diagnosis:
        if diagnosis_id:
            record = self.store.get_diagnosis(diagnosis_id)
            self._run(record.run_id, context, f"diagnosis {diagnosis_id!r} not found")
            require(not run_id or run_id == record.run_id, "run_id",
                    f"diagnosis {diagnosis_id!r} belongs to run {record.run_id!r}, not {run_id!r}")
        else:
            require(bool(run_id), "diagnosis_id", "or run_id is required")
            self._run(run_id, context)
            record = self.store.latest_diagnosis(run_id)
        return pb.Diagnosis.FromString(record.payload)

    def GetDiagnosis(self, request: pb.GetDiagnosisRequest, context) -> pb.Diagnosis:
        return self._diagnosis(request.diagnosis_id, request.run_id, context)

    def ListDiagnoses(self, request: pb.ListDiagnosesRequest, context) -> pb.ListDiagnosesResponse:
        self._run(request.run_id, context)
        return pb.ListDiagnosesResponse(diagnoses=[pb.Diagnosis.FromString(r.payload)
                                                   for r in self.store.list_diagnoses(request.run_id)])

    # ------------------------------------------------------------ suggest
    def Suggest(self, request: pb.SuggestRequest, context) -> Iterator[pb.SuggestResponse]:
        if not request.run_id and request.diagnosis_id:
            # "Suggest from this diagnosis": the diagnosis names its run.
            request.run_id = self.store.get_diagnosis(request.diagnosis_id).run_id
            self._run(request.run_id, context, f"diagnosis {request.diagnosis_id!r} not found")
        require(bool(request.run_id), "run_id", "or diagnosis_id is required")
        run = self._run(request.run_id, context)
        pool = self._pool(request.pool_id, context)
        require(run.project == pool.project, "pool_id",
                f"pool is in project {pool.project!r} but the run is in {run.project!r}")
        require(pool.embedding_dim == run.embedding_dim, "pool_id",
                f"pool embedding_dim {pool.embedding_dim} differs from the run's {run.embedding_dim}")
        require(0 < request.budget <= self.config.max_budget, "budget",
                f"must be between 1 and {self.config.max_budget}")
        strategy = request.strategy or "targeted"
        require(strategy in STRATEGIES, "strategy", f"must be one of {', '.join(STRATEGIES)}")
        require(pool.num_rows > 0, "pool_id", f"pool {pool.id!r} has no rows yet")
        check_name(request.name, "name", required=False)
        check_name(request.request_id, "request_id", required=False)
        for w in ("uncertainty_weight", "slice_weight"):
            require(0 <= getattr(request, w) < float("inf"), w, "must be a finite number, not negative")
        require(pool.num_classes > 0 or strategy not in ("entropy", "margin"), "strategy",
                f"{strategy!r} ranks by the pool's probabilities, but pool {pool.id!r} has none (num_classes=0)")
        require(0 <= request.seed <= MAX_SEED, "seed", f"must be between 0 and {MAX_SEED}")
        require(strategy == "targeted" or not request.region_ids, "region_ids",
                f"chooses the regions of the targeted strategy; strategy {strategy!r} aims at none")
        require(strategy == "similar" or not request.query_ids, "query_ids",
                f"are the rows the 'similar' strategy finds more of; strategy is {strategy!r}")
        require(strategy != "similar" or len(request.query_ids) > 0, "query_ids",
                "strategy 'similar' needs at least one sample id of the run to find more like")
        require(len(request.query_ids) <= self.config.max_budget, "query_ids",
                f"at most {self.config.max_budget} rows, got {len(request.query_ids)}")
        diagnosis: Optional[pb.Diagnosis] = None
        try:
            diagnosis = self._diagnosis(request.diagnosis_id, run.id, context)
        except NotFound:
            if request.diagnosis_id:
                raise
            self._run(run.id, context)         # NOT_FOUND if the run itself went (deleted meanwhile)
            if strategy == "targeted":
                raise FailedPrecondition(f"run {run.id!r} has no diagnosis yet: call Diagnose first "
                                         "(strategy 'targeted' needs failure regions)") from None
        if request.region_ids:
            check_region_ids(diagnosis, request.region_ids)
        filters = [MetadataFilterSpec(column=f.column, op=f.op, values=tuple(f.values), number=f.number)
                   for f in request.filters]

        progress_q: "queue.Queue[tuple[float, str]]" = queue.Queue()
        outcome: dict[str, object] = {}
        cancelled = threading.Event()
        context.add_callback(cancelled.set)

        throttle = ProgressThrottle()

        def progress(fraction: float, stage: str) -> None:
            if cancelled.is_set():
                raise RuntimeError("the client cancelled the call")
            if throttle.should_send(stage):
                progress_q.put((fraction, stage))

        def work() -> None:
            try:
                outcome["value"] = self.suggestions.run(run, pool, diagnosis, request, strategy, filters, progress)
            except WorkerLost as exc:
                # An index shard gone mid-call (its pool deleted by another server, or its Ray node
                # lost): the pool's shards are dropped, so the next call builds them anew.
                self.indexes.drop_shards(pool.id)
                outcome["error"] = (NotFound(f"pool {pool.id!r} was deleted") if not self.store.exists("pool", pool.id)
                                    else WorkerLost(f"pool {pool.id!r}: its index shards were lost mid-call ({exc}); "
                                                    "they are built again on the next call: retry"))
            except BaseException as exc:  # re-raised on the RPC thread
                outcome["error"] = exc
            finally:
                progress_q.put((-1.0, ""))

        threading.Thread(target=work, name="suggest", daemon=True).start()
        while True:
            fraction, stage = progress_q.get()
            if fraction < 0:
                break
            yield pb.SuggestResponse(progress=pb.Progress(fraction_done=fraction, stage=stage))
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        result = outcome["value"]
        candidates = result.candidates  # type: ignore[attr-defined]
        for start in range(0, len(candidates), CANDIDATE_BATCH):
            yield pb.SuggestResponse(candidates=pb.CandidateBatch(candidates=candidates[start:start + CANDIDATE_BATCH]))
        self.telemetry.suggestions_served(strategy, len(candidates))
        yield pb.SuggestResponse(done=result.done_message())  # type: ignore[attr-defined]

    def ListSuggestionSets(self, request: pb.ListSuggestionSetsRequest, context) -> pb.ListSuggestionSetsResponse:
        require(bool(request.run_id or request.pool_id), "run_id", "or pool_id is required")
        for target_id, check in ((request.run_id, self._run), (request.pool_id, self._pool)):
            if target_id:
                check(target_id, context)
        limit, offset = self._page(request.page_size, request.page_token)
        records, token = self._one_page(self.store.list_suggestion_sets(request.run_id, request.pool_id, limit + 1,
                                                                        offset), limit, offset)
        # A set's run and pool are in one project (Suggest refuses others), which the checks above allow.
        return pb.ListSuggestionSetsResponse(suggestion_sets=[set_message(r) for r in records], next_page_token=token)

    def GetSuggestionSet(self, request: pb.GetSuggestionSetRequest, context) -> pb.SuggestionSetPage:
        require(bool(request.suggestion_set_id), "suggestion_set_id", "is required")
        require(0 <= request.page_size <= MAX_SET_PAGE, "page_size", f"must be between 0 and {MAX_SET_PAGE}")
        _, offset = self._page(0, request.page_token)
        limit = request.page_size or SET_PAGE
        known = self._suggestion_set_access(request.suggestion_set_id, context)     # before its file is read
        record, table = self.store.read_suggestion_set(request.suggestion_set_id, known)
        token = str(offset + limit) if offset + limit < table.num_rows else ""
        return pb.SuggestionSetPage(suggestion_set=set_message(record, table),
                                    candidates=set_candidates(table, offset, limit), next_page_token=token)

    def DeleteSuggestionSet(self, request: pb.DeleteSuggestionSetRequest, context) -> pb.DeleteResponse:
        require(bool(request.suggestion_set_id), "suggestion_set_id", "is required")
        set_id = request.suggestion_set_id
        self._suggestion_set_access(set_id, context)
        out = self.store.delete_suggestion_set(set_id)
        log.info("deleted suggestion set %s: %d picks released, %d bytes", set_id, out.rows, out.bytes)
        return pb.DeleteResponse(id=out.id, rows=out.rows, suggestion_sets=out.suggestion_sets, files=out.files,
                                 bytes=out.bytes)

    # ------------------------------------------------------------ map
    def GetRunMap(self, request: pb.GetRunMapRequest, context) -> pb.RunMap:
        run = self._run(request.run_id, context)
        require(run.num_rows > 0, "run_id", f"run {run.id!r} has no predictions yet")
        require(0 <= request.max_points <= MAX_POINTS, "max_points", f"must be between 0 and {MAX_POINTS}")
        require(0 <= request.seed <= MAX_SEED, "seed", f"must be between 0 and {MAX_SEED}")
        require(request.projection in ("", "pca"), "projection", "must be '' (the clustering space) or 'pca'")
        try:
            diagnosis: Optional[pb.Diagnosis] = self._diagnosis(request.diagnosis_id, run.id, context)
        except NotFound:
            if request.diagnosis_id:
                raise
            diagnosis = None
        return run_map_message(self.store, run, diagnosis, request.max_points, request.seed, request.projection)

    # ------------------------------------------------------------ region members
    def ListRegionMembers(self, request: pb.ListRegionMembersRequest, context) -> pb.ListRegionMembersResponse:
        require(bool(request.diagnosis_id), "diagnosis_id", "is required")
        missing = f"diagnosis_id: diagnosis {request.diagnosis_id!r} not found"
        try:
            record = self.store.get_diagnosis(request.diagnosis_id)
        except NotFound:
            raise NotFound(missing) from None
        run = self._run(record.run_id, context, missing)     # another project's: as if missing
        return self.members.page(run, pb.Diagnosis.FromString(record.payload), request.region_id,
                                 request.page_size, request.page_token)

    # ------------------------------------------------------------ labels
    def _label_target(self, pool_id: str, run_id: str, context) -> tuple[str, str, list[str]]:
        require(bool(pool_id) != bool(run_id), "pool_id", "give exactly one of pool_id and run_id")
        if pool_id:
            return "pool", self._pool(pool_id, context).id, []
        run = self._run(run_id, context)
        return "run", run.id, list(run.class_names)

    def ImportLabels(self, request: pb.ImportLabelsRequest, context) -> pb.ImportLabelsResponse:
        target, target_id, class_names = self._label_target(request.pool_id, request.run_id, context)
        return import_labels(self.store, target, target_id, request, class_names, self.config.max_batch_rows)

    def ListLabels(self, request: pb.ListLabelsRequest, context) -> pb.LabelSet:
        target, target_id, _ = self._label_target(request.pool_id, request.run_id, context)
        return list_labels(self.store, target, target_id)

    # ------------------------------------------------------------ compare
    def CompareRuns(self, request: pb.CompareRunsRequest, context) -> pb.RunComparison:
        require(bool(request.run_id_a), "run_id_a", "is required")
        require(bool(request.run_id_b), "run_id_b", "is required")
        run_a = self._run(request.run_id_a, context)
        run_b = self._run(request.run_id_b, context)
        require(0 <= request.min_overlap <= 1, "min_overlap", "must be in [0, 1]")
        require(0 <= request.alpha < 1, "alpha", "must be in [0, 1)")
        diagnoses = []
        for run, diagnosis_id, field in ((run_a, request.diagnosis_id_a, "run_id_a"),
                                         (run_b, request.diagnosis_id_b, "run_id_b")):
            try:
                diagnoses.append(self._diagnosis(diagnosis_id, run.id, context))
            except NotFound:
                if diagnosis_id:
                    raise
                self._run(run.id, context)     # NOT_FOUND if the run itself went (deleted meanwhile)
                raise FailedPrecondition(f"{field}: run {run.id!r} has no diagnosis yet: call Diagnose first") from None
        return compare_runs(self.store, run_a, run_b, diagnoses[0], diagnoses[1],
                            request.min_overlap or DEFAULT_MIN_OVERLAP, request.alpha or DEFAULT_ALPHA)

    def shutdown(self) -> None:
        self.jobs.shutdown()

