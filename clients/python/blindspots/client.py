"""The Python SDK: log predictions and pools, diagnose, pull suggestions.

    from blindspots import Client
    client = Client("localhost:50051")
    run = client.create_run("resnet-v3-eval", class_names=names, embedding_dim=512)
    run.log_predictions(ids, embeddings, labels=labels, probabilities=probs, metadata=df, uris=uris)
    diagnosis = run.diagnose()
    print(diagnosis.summary())
    pool = client.create_pool("unlabeled-2026-11", embedding_dim=512)
    pool.add(pool_ids, pool_embeddings, metadata=pool_df, uris=pool_uris)
    picks = run.suggest(pool, budget=1000, output="to_label.parquet")
"""
from __future__ import annotations

import difflib
import os
import random
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar, Union

import grpc
import numpy as np
import pandas as pd

from ._columns import as_array, as_frame, as_matrix, as_probabilities, columns_frame, iter_batches
from ._delete_api import DeleteAPI, DeleteSummary
from ._labels_api import LabelsAPI, LabelsSummary
from ._progress import ProgressBar
from .comparison import Comparison
from .errors import BlindspotsError, InvalidParameterError, JobFailedError, from_rpc_error
from .labeling import export_picks, picks_format
from .results import Diagnosis, RunMap, candidates_frame, write_manifest
from .v1 import blindspots_pb2 as pb
from .v1 import blindspots_pb2_grpc as pb_grpc

T = TypeVar("T")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
METADATA = """Metadata, one row per sample: a pandas DataFrame (any index; rows are taken in order),
a mapping of column name to values, or a table with ``to_pandas()`` (pyarrow, polars). Numbers,
booleans (1/0) and durations (seconds) become number columns; datetimes become timestamp columns
(naive ones are read as UTC, zoned ones converted to UTC); anything else becomes strings. Missing
values (None, NaN, NaT, pd.NA) stay missing."""
_LEGACY_ORDER = ("labels", "probabilities", "embeddings", "metadata", "uris")   # log_predictions before 2026-11
FILTER_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "in": "in"}


@dataclass(frozen=True)
class IngestSummary:
    rows_received: int
    rows_stored: int
    batches: int
    duplicate_batches: int
    total_rows: int
    rows_already_stored: int = 0     # re-sent rows (same id, same content) that were skipped


def _pushback_seconds(err: grpc.RpcError) -> Optional[float]:
    """The server's ``grpc-retry-pushback-ms`` (it asks to retry after that long), if it sent one."""
    try:
        trailers = err.trailing_metadata() or ()
    except Exception:
        return None
    for key, value in trailers:
        if key == "grpc-retry-pushback-ms":
            try:
                return max(int(value), 0) / 1000.0
            except ValueError:
                return None
    return None


def _trace_headers() -> tuple:
    """The active OpenTelemetry span's context as gRPC metadata; () without OpenTelemetry or a span."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple((k.lower(), v) for k, v in carrier.items())



def _last_used(message):
    """A Run's or Pool's ``last_used_at`` (naive UTC), NaT from a server that does not say it."""
    return message.last_used_at.ToDatetime() if message.HasField("last_used_at") else pd.NaT


class Client(LabelsAPI, DeleteAPI):
    """A connection to a blindspots server.

    ``address``: host:port; unset, ``BLINDSPOTS_ADDRESS`` or localhost:50051.
    ``token``: bearer token sent with every call (servers with auth enabled);
    unset, ``BLINDSPOTS_TOKEN``.
    ``root_certificates``: PEM bytes or a file path of the CA that signed the
    server's certificate; set it (or ``tls=True`` for system roots) to use TLS;
    unset, ``BLINDSPOTS_CA``. The variables are the CLI's, so a pipeline step
    and the command line reach the same server the same way.
    Calls failing with UNAVAILABLE or DEADLINE_EXCEEDED, or refused with a retry
    pushback (too many open streams), are retried with exponential backoff up to
    ``retries`` times; ingest retries re-send the same
    batch ids, so nothing is stored twice.
    """

    def __init__(self, address: Optional[str] = None, *, token: Optional[str] = None,
                 root_certificates: Union[bytes, str, None] = None, tls: bool = False,
                 timeout: float = 600.0, retries: int = 5, max_message_mb: int = 64):
        address = address or os.environ.get("BLINDSPOTS_ADDRESS") or "localhost:50051"
        token = token if token is not None else (os.environ.get("BLINDSPOTS_TOKEN") or None)
        if root_certificates is None:
            root_certificates = os.environ.get("BLINDSPOTS_CA") or None
        self.address = address
        self.timeout = timeout
        self.retries = retries
        options = [("grpc.max_receive_message_length", max_message_mb << 20),
                   ("grpc.max_send_message_length", max_message_mb << 20)]
        if root_certificates is not None or tls:
            if isinstance(root_certificates, str):
                with open(root_certificates, "rb") as fh:
                    root_certificates = fh.read()
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._auth = (("authorization", f"Bearer {token}"),) if token else ()
        self.stub = pb_grpc.BlindspotsStub(self._channel)

    @property
    def _metadata(self) -> tuple:
        """Each call's metadata: the token, and where OpenTelemetry is installed and a span is
        active, its W3C trace context (``traceparent``), so the server's spans join the caller's trace."""
        return self._auth + _trace_headers()

    # ------------------------------------------------------------ plumbing
    def _call(self, fn: Callable[[], T]) -> T:
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except grpc.RpcError as err:
                pushback = _pushback_seconds(err)
                if (err.code() in RETRYABLE or pushback is not None) and attempt < self.retries:
                    time.sleep(max(pushback or 0.0, delay * (1 + random.random())))
                    delay = min(delay * 2, 5.0)
                    continue
                raise from_rpc_error(err) from None
        raise AssertionError("unreachable")

    def _unary(self, method, request):
        return self._call(lambda: method(request, timeout=self.timeout, metadata=self._metadata))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server accepts connections."""
        grpc.channel_ready_future(self._channel).result(timeout=timeout)

    # ------------------------------------------------------------ runs
    def create_run(self, name: str, class_names: Sequence[str], embedding_dim: int, *, project: str = "",
                   model_name: str = "", model_version: str = "", dataset_name: str = "",
                   request_id: str = "") -> "Run":
        """A new run. ``request_id``: a call repeated with it (same project and fields) gets the run
        the first one created: pass a stable one (e.g. the pipeline run's id) so a step that runs
        again logs into the same run (ingest skips rows already stored). Without it each call gets a
        fresh one, so this method's own retries (a reply lost on the way) never make a second run."""
        msg = self._unary(self.stub.CreateRun, pb.CreateRunRequest(
            name=name, project=project, class_names=list(class_names), embedding_dim=int(embedding_dim),
            model_name=model_name, model_version=model_version, dataset_name=dataset_name,
            request_id=request_id or _request_id()))
        return Run(self, msg)

    def get_run(self, run_id: str) -> "Run":
        return Run(self, self._unary(self.stub.GetRun, pb.GetRunRequest(run_id=run_id)))

    def _pages(self, method, request) -> Iterator:
        """Every page of a paged call: ``request`` sent again with each ``next_page_token``
        until the server gives none."""
        while True:
            page = self._unary(method, request)
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def list_runs(self, project: str = "") -> list["Run"]:
        return [Run(self, r) for page in self._pages(self.stub.ListRuns, pb.ListRunsRequest(project=project))
                for r in page.runs]

    def runs_frame(self, project: str = "") -> pd.DataFrame:
        return pd.DataFrame([{"id": r.id, "name": r.name, "project": r.message.project,
                              "model": r.message.model_name, "version": r.message.model_version,
                              "rows": r.message.num_rows, "bytes": r.message.stored_bytes,
                              "created_at": r.message.created_at.ToDatetime(),
                              "last_used_at": _last_used(r.message)}
                             for r in self.list_runs(project)],
                            columns=["id", "name", "project", "model", "version", "rows", "bytes", "created_at",
                                     "last_used_at"])

    # ------------------------------------------------------------ pools
    def create_pool(self, name: str, embedding_dim: int, *, num_classes: int = 0, project: str = "",
                    request_id: str = "") -> "Pool":
        """A new pool (``request_id``: as in :meth:`create_run`)."""
        return Pool(self, self._unary(self.stub.CreatePool, pb.CreatePoolRequest(
            name=name, project=project, embedding_dim=int(embedding_dim), num_classes=int(num_classes),
            request_id=request_id or _request_id())))

    def get_pool(self, pool_id: str) -> "Pool":
        return Pool(self, self._unary(self.stub.GetPool, pb.GetPoolRequest(pool_id=pool_id)))

    def list_pools(self, project: str = "") -> list["Pool"]:
        return [Pool(self, p) for page in self._pages(self.stub.ListPools, pb.ListPoolsRequest(project=project))
                for p in page.pools]

    def pools_frame(self, project: str = "") -> pd.DataFrame:
        return pd.DataFrame([{"id": p.id, "name": p.name, "project": p.message.project, "rows": p.message.num_rows,
                              "dim": p.message.embedding_dim, "index": p.message.index.kind,
                              "indexed": p.message.index.num_indexed, "bytes": p.message.stored_bytes,
                              "created_at": p.message.created_at.ToDatetime(),
                              "last_used_at": _last_used(p.message)}
                             for p in self.list_pools(project)],
                            columns=["id", "name", "project", "rows", "dim", "index", "indexed", "bytes",
                                     "created_at", "last_used_at"])

    # ------------------------------------------------------------ ingest
    def _ingest(self, method, target_field: str, target_id: str, sample_ids, embeddings, labels, probabilities,
                metadata, uris, batch_size: int, logits: bool, batch_id_prefix: str,
                progress: Union[bool, str]) -> IngestSummary:
        ids = [str(s) for s in sample_ids]
        n = len(ids)
        if n == 0:   # said here, by name: the server would only see a stream without a batch
            raise ValueError("sample_ids is empty: there are no rows to send")
        emb = as_matrix(embeddings, "embeddings", n)
        lab = None if labels is None else _class_indices(labels)
        if lab is not None and len(lab) != n:
            raise ValueError(f"labels has {len(lab)} values but sample_ids has {n}")
        prob = (None if probabilities is None else as_matrix(probabilities, "probabilities", n) if logits
                else as_probabilities(probabilities, n))
        metadata = as_frame(metadata, n)
        if uris is not None and len(uris) != n:
            raise ValueError(f"uris has {len(uris)} values but sample_ids has {n}")
        bar = ProgressBar(f"ingest {target_id}", progress)

        def stream() -> Iterable[pb.IngestBatch]:
            sent = 0
            for msg in iter_batches(target_field, target_id, ids, emb, lab, prob, metadata,
                                    None if uris is None else list(uris), batch_size, logits, batch_id_prefix):
                sent += len(msg.sample_ids)
                yield msg
                bar.update(sent / max(n, 1), f"{sent}/{n} rows")

        try:
            resp = self._call(lambda: method(stream(), timeout=self.timeout, metadata=self._metadata))
        finally:
            bar.close()
        return IngestSummary(resp.rows_received, resp.rows_stored, resp.batches_received,
                             resp.batches_duplicate, resp.total_rows, resp.rows_already_stored)

    # ------------------------------------------------------------ jobs
    def server_info(self) -> pb.ServerInfo:
        """What the server is (version, store, compute, limits, strategies) and what this client's
        token may do (``auth``, ``all_projects`` or ``projects``, ``read_only``)."""
        return self._unary(self.stub.GetServerInfo, pb.GetServerInfoRequest())

    def get_job(self, job_id: str) -> pb.Job:
        return self._unary(self.stub.GetJob, pb.GetJobRequest(job_id=job_id))

    def cancel_job(self, job_id: str) -> pb.Job:
        """Cancel a job: a pending one at once, a running one at its next progress step
        (``wait_job`` then raises JobFailedError saying it ended CANCELLED)."""
        return self._unary(self.stub.CancelJob, pb.GetJobRequest(job_id=job_id))

    def list_jobs(self, states: Sequence[str] = (), *, kind: str = "", run: Union["Run", str, None] = None,
                  pool: Union["Pool", str, None] = None, project: str = "", limit: Optional[int] = None
                  ) -> pd.DataFrame:
        """The jobs this client may see, newest first: one row per job (JOB_COLUMNS). ``states``
        (e.g. ``["PENDING", "RUNNING"]``: what is queued or running now), ``kind`` (``diagnose``,
        ``index_build``), ``run`` (its diagnoses), ``pool`` (its index builds) and ``project``
        narrow them; ``limit`` stops after that many."""
        unknown = [s for s in states if s not in pb.Job.State.keys() or s == "STATE_UNSPECIFIED"]
        if unknown:
            raise ValueError(f"states: unknown job state(s) {unknown}; one of "
                             f"{[k for k in pb.Job.State.keys() if k != 'STATE_UNSPECIFIED']}")
        request = pb.ListJobsRequest(states=[pb.Job.State.Value(s) for s in states], kind=kind,
                                     run_id=run.id if isinstance(run, Run) else (run or ""),
                                     pool_id=pool.id if isinstance(pool, Pool) else (pool or ""), project=project,
                                     page_size=min(limit, 1000) if limit else 1000)
        rows = []
        for page in self._pages(self.stub.ListJobs, request):
            rows += [{"id": j.id, "kind": j.kind, "state": pb.Job.State.Name(j.state), "run_id": j.run_id,
                      "pool_id": j.pool_id,
                      "fraction_done": j.fraction_done, "stage": j.stage, "result_id": j.result_id,
                      "error": j.error, "created_at": j.created_at.ToDatetime(),
                      "started_at": j.started_at.ToDatetime() if j.HasField("started_at") else pd.NaT,
                      "updated_at": j.updated_at.ToDatetime()} for j in page.jobs]
            if limit and len(rows) >= limit:
                break
        return pd.DataFrame(rows[:limit] if limit else rows, columns=JOB_COLUMNS)

    def wait_job(self, job_id: str, progress: Union[bool, str] = "auto", label: str = "job") -> pb.Job:
        """Follow a job until it ends; raise JobFailedError unless it succeeded."""
        bar = ProgressBar(label, progress)
        job = None
        try:
            while True:
                stream = self.stub.WatchJob(pb.GetJobRequest(job_id=job_id), timeout=self.timeout,
                                            metadata=self._metadata)
                try:
                    for job in stream:
                        bar.update(job.fraction_done, job.stage)
                    break
                except grpc.RpcError as err:
                    if err.code() not in RETRYABLE:
                        raise from_rpc_error(err) from None
                    time.sleep(0.5)
                except BaseException:
                    # Interrupted (Ctrl-C): end the call now. Left open, the process could exit
                    # with gRPC still serving it, which crashed it (SIGSEGV) about 1 time in 40.
                    stream.cancel()
                    raise
        finally:
            bar.close()
        if job is None or job.state not in (pb.Job.SUCCEEDED, pb.Job.FAILED, pb.Job.CANCELLED):
            job = self._unary(self.stub.GetJob, pb.GetJobRequest(job_id=job_id))
        if job.state != pb.Job.SUCCEEDED:
            raise JobFailedError(grpc.StatusCode.ABORTED,
                                 f"job {job_id} ended {pb.Job.State.Name(job.state)}: {job.error}")
        return job

    def get_diagnosis(self, diagnosis_id: str = "", run_id: str = "") -> Diagnosis:
        return Diagnosis(self._unary(self.stub.GetDiagnosis,
                                     pb.GetDiagnosisRequest(diagnosis_id=diagnosis_id, run_id=run_id)), client=self)

    def get_run_map(self, run_id: str, diagnosis_id: str = "", max_points: int = 3000, seed: int = 0,
                    projection: str = "") -> RunMap:
        """A 2-D map of about ``max_points`` of the run's rows, with failures and
        regions of ``diagnosis_id`` (default: the run's latest diagnosis), laid out by
        the server: by default as the diagnosis's clustering space (regions
        separate), ``projection="pca"``: PCA of the L2-normalised embeddings."""
        return RunMap.from_message(self._unary(self.stub.GetRunMap, pb.GetRunMapRequest(
            run_id=run_id, diagnosis_id=diagnosis_id, max_points=int(max_points), seed=int(seed),
            projection=projection)))

    def compare(self, run_a: Union["Run", str], run_b: Union["Run", str], *, diagnosis_id_a: str = "",
                diagnosis_id_b: str = "", min_overlap: float = 0.0, alpha: float = 0.0) -> Comparison:
        """Compare two model versions diagnosed on the same test set (rows matched by
        sample id): fixed / remaining / new failure regions and per-slice error rates.
        ``min_overlap`` (Jaccard, default 0.25) and ``alpha`` (0.05) as in RunComparison."""
        ids = [r.id if isinstance(r, Run) else r for r in (run_a, run_b)]
        return Comparison(self._unary(self.stub.CompareRuns, pb.CompareRunsRequest(
            run_id_a=ids[0], run_id_b=ids[1], diagnosis_id_a=diagnosis_id_a, diagnosis_id_b=diagnosis_id_b,
            min_overlap=min_overlap, alpha=alpha)))

    def region_members(self, diagnosis_id: str, region_id: int, *, page_size: int = 5000,
                       output: Union[str, None] = None) -> pd.DataFrame:
        """Every row of one failure region, paged from the server, as a DataFrame:
        row_index, sample_id, uri, label, predicted, confidence, failed, then the
        metadata columns. Members are the rows the diagnosis saw; ``df.attrs`` says
        how many that was and how many the run has now (rows ingested later belong
        to no region until the run is diagnosed again). ``output``: also write it
        to this .parquet/.csv path."""
        pages = list(self._pages(self.stub.ListRegionMembers, pb.ListRegionMembersRequest(
            diagnosis_id=diagnosis_id, region_id=int(region_id), page_size=int(page_size))))
        first, page = pages[0], pages[-1]
        frames = [_members_frame(p) for p in pages]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        frame.attrs.update(diagnosis_id=first.diagnosis_id, region_id=first.region_id,
                           num_rows_diagnosed=first.num_rows_diagnosed, num_rows_in_run=page.num_rows_in_run)
        if output:
            write_manifest(frame, output)
        return frame

    # ------------------------------------------------------------ suggest
    def suggest(self, run_id: str, pool_id: str, budget: int, *, strategy: str = "targeted",
                diagnosis_id: str = "", exclude_ids: Sequence[str] = (), allow_repeats: bool = False,
                filters: Sequence[tuple] = (), seed: int = 0, name: str = "",
                uncertainty_weight: float = 0.0, slice_weight: float = 0.0,
                region_ids: Sequence[int] = (), query_ids: Sequence[str] = (), request_id: str = "",
                output: Union[str, None] = None, format: str = "", local_files_root: Optional[str] = None,
                progress: Union[bool, str] = "auto") -> pd.DataFrame:
        """Ranked pool samples to label next, as a DataFrame (rank, sample_id, uri,
        score, region_id, reason, ..., predicted_label, confidence). ``filters``: tuples
        like ("region", "==", "north"), ("price", "<", 500000), ("camera", "in", ["cam_a"]).
        ``output``: also write the picks there, as ``format`` ("parquet", "csv",
        "label-studio": import tasks + labeling config, "coco"; default: by suffix,
        .json = label-studio). ``df.attrs["suggestion_set"]`` holds the stored set's id;
        ``df.attrs["exclusions"]`` how many pool rows could not be picked and why (earlier
        picks of this run and pool, labeled samples, the run's own ids, ``exclude_ids``,
        filters) and how many were eligible; ``df.attrs["note"]`` what differs from the
        request (e.g. a budget above the eligible rows), also raised as a UserWarning;
        ``df.attrs["pool_coverage"]`` (targeted) one dict per region (plain values, so frames
        still concatenate; ``pd.DataFrame(...)`` tabulates them): how well the eligible pool
        covers its failures (``covered``, ``distance_ratio``; README, Suggest).
        ``region_ids`` (targeted): aim the whole budget at these regions of the diagnosis.
        ``query_ids`` (``strategy="similar"``, implied when given): "more like these", pool
        samples nearest to these test rows of the run (sample ids), e.g. failures found by hand.
        ``request_id``: a call repeated with it (same run and pool) gets the set the first one
        stored, and nothing new is picked: pass a stable one (e.g. the pipeline run's id) so a step
        that runs again gets the same picks. Without it, each call gets a fresh one, so this
        method's own retries (a connection lost mid-answer) never start a second round."""
        if query_ids and strategy == "targeted":
            strategy = "similar"
        fmt = picks_format(output, format) if output else ""
        request = pb.SuggestRequest(run_id=run_id, pool_id=pool_id, budget=int(budget), strategy=strategy,
                                    diagnosis_id=diagnosis_id, exclude_ids=[str(i) for i in exclude_ids],
                                    allow_repeats=allow_repeats, filters=[_filter(f) for f in filters],
                                    seed=seed, name=name, uncertainty_weight=uncertainty_weight,
                                    slice_weight=slice_weight, region_ids=[int(r) for r in region_ids],
                                    query_ids=[str(i) for i in query_ids],
                                    request_id=request_id or _request_id())
        bar = ProgressBar(f"suggest {strategy}", progress)

        def call():
            candidates, done = [], None
            for resp in self.stub.Suggest(request, timeout=self.timeout, metadata=self._metadata):
                kind = resp.WhichOneof("payload")
                if kind == "progress":
                    bar.update(resp.progress.fraction_done, resp.progress.stage)
                elif kind == "candidates":
                    candidates.extend(resp.candidates.candidates)
                else:
                    done = resp.done
            return candidates, done

        try:
            candidates, done = self._call(call)
        finally:
            bar.close()
        frame = self._picks(candidates, done, run_id, output, fmt, local_files_root)
        if frame.attrs["note"]:
            warnings.warn(f"suggest: {frame.attrs['note']}", UserWarning, stacklevel=2)
        return frame

    def _picks(self, candidates, done: Optional[pb.SuggestionSet], run_id: str, output: Optional[str], fmt: str,
               local_files_root: Optional[str]) -> pd.DataFrame:
        """Suggest's answer as the DataFrame :meth:`suggest` returns, written to ``output`` if given."""
        frame = candidates_frame(candidates)
        frame.attrs["suggestion_set"] = done.id if done is not None else ""
        frame.attrs["exclusions"] = _exclusions_dict(done)
        frame.attrs["note"] = done.note if done is not None else ""
        frame.attrs["pool_coverage"] = _coverage(done)
        if output:
            run = self.get_run(run_id).message if fmt in ("label-studio", "coco") else None
            export_picks(frame, output, fmt, list(run.class_names) if run else [],
                         model_version=run.model_version if run else "", local_files_root=local_files_root)
        return frame

    def list_suggestion_sets(self, run: Union["Run", str, None] = None,
                             pool: Union["Pool", str, None] = None) -> pd.DataFrame:
        """The suggestion sets stored for a run, a pool or both (at least one), oldest first: one
        row per set (id, name, run_id, pool_id, diagnosis_id, strategy, budget, num_candidates,
        created_at, request_id), without its candidates (:meth:`get_suggestion_set`)."""
        run_id = run.id if isinstance(run, Run) else (run or "")
        pool_id = pool.id if isinstance(pool, Pool) else (pool or "")
        pages = self._pages(self.stub.ListSuggestionSets, pb.ListSuggestionSetsRequest(
            run_id=run_id, pool_id=pool_id, page_size=1000))
        return pd.DataFrame([{**{c: getattr(m, c) for c in SET_COLUMNS if c != "created_at"},
                              "created_at": m.created_at.ToDatetime()}
                             for page in pages for m in page.suggestion_sets], columns=SET_COLUMNS)

    def get_suggestion_set(self, suggestion_set_id: str, *, output: Union[str, None] = None, format: str = "",
                           local_files_root: Optional[str] = None) -> pd.DataFrame:
        """A stored suggestion set's candidates in rank order, as :meth:`suggest` returned them
        (the same columns and ``attrs``: exclusions, note, pool coverage), paged from the
        server; ``output`` and ``format`` write it as :meth:`suggest` does. Sets stored by earlier
        server versions lack distance, slice and the model's prediction (predicted_label -1),
        and the attrs (zeros, "", [])."""
        fmt = picks_format(output, format) if output else ""
        pages = list(self._pages(self.stub.GetSuggestionSet, pb.GetSuggestionSetRequest(
            suggestion_set_id=suggestion_set_id, page_size=10000)))
        done = pages[-1].suggestion_set
        return self._picks([c for page in pages for c in page.candidates], done, done.run_id, output, fmt,
                           local_files_root)


def _request_id() -> str:
    """A call's own request id: its retries repeat it, a new call gets another."""
    return f"sdk-{uuid.uuid4().hex}"


JOB_COLUMNS = ["id", "kind", "state", "run_id", "pool_id", "fraction_done", "stage", "result_id", "error",
               "created_at", "started_at", "updated_at"]
SET_COLUMNS = ["id", "name", "run_id", "pool_id", "diagnosis_id", "strategy", "budget", "num_candidates",
               "created_at", "request_id"]


def _exclusions_dict(done: Optional[pb.SuggestionSet]) -> dict[str, int]:
    """The answer's exclusion counts as a plain dict (zeros when the server sent none)."""
    fields = ("pool_rows", "run_ids", "labeled", "given_ids", "earlier_picks", "filtered_out", "eligible")
    ex = done.exclusions if done is not None else pb.SuggestionExclusions()
    return {f: int(getattr(ex, f)) for f in fields}


def _coverage(done: Optional[pb.SuggestionSet]) -> list[dict]:
    """The answer's pool coverage, a dict per region (none for baselines)."""
    fields = ("region_id", "failures", "covered", "reach", "median_distance", "distance_ratio")
    return [{f: getattr(r, f) for f in fields} for r in (done.pool_coverage if done is not None else [])]


MEMBER_COLUMNS = ["row_index", "sample_id", "uri", "label", "predicted", "confidence", "failed"]


def _members_frame(page: pb.ListRegionMembersResponse) -> pd.DataFrame:
    n = len(page.sample_ids)
    frame = pd.DataFrame({
        "row_index": np.asarray(page.row_indices, dtype=np.int64), "sample_id": list(page.sample_ids),
        "uri": list(page.uris), "label": np.asarray(page.labels, dtype=np.int64),
        "predicted": np.asarray(page.predicted, dtype=np.int64),
        "confidence": np.asarray(page.confidence, dtype=np.float64),
        "failed": np.asarray(page.failed, dtype=bool)}, columns=MEMBER_COLUMNS)
    meta = columns_frame(page.metadata, n)
    # A metadata column named like a member field keeps its name with a prefix.
    meta.columns = [f"metadata.{c}" if c in MEMBER_COLUMNS else c for c in meta.columns]
    return pd.concat([frame, meta], axis=1)


def _filter(f) -> pb.MetadataFilter:
    if isinstance(f, pb.MetadataFilter):
        return f
    column, op, value = f
    op = FILTER_OPS.get(op, op)
    msg = pb.MetadataFilter(column=column, op=op)
    if op in ("eq", "ne", "in") and not isinstance(value, (int, float, np.number, pd.Timestamp)):
        msg.values.extend([str(v) for v in value] if isinstance(value, (list, tuple, set)) else [str(value)])
    elif isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "timestamp"):
        msg.number = pd.Timestamp(value).value / 1000.0       # unix micros
    else:
        msg.number = float(value)
    return msg


def _diagnosis_params(params: dict) -> pb.DiagnosisParams:
    """DiagnosisParams from keyword arguments; a name or type the message does not take
    raises :class:`InvalidParameterError` naming it (protobuf's own error names neither
    the call nor the valid choices)."""
    valid = [f.name for f in pb.DiagnosisParams.DESCRIPTOR.fields]
    for name in params:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidParameterError(f"diagnose() got an unknown parameter {name!r}{hint}; "
                                        f"valid parameters: {', '.join(valid)}")
    msg = pb.DiagnosisParams()
    for name, value in params.items():
        try:
            setattr(msg, name, value)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"diagnose() parameter {name!r} cannot be {value!r}: {exc}") from None
    return msg


def _class_indices(labels, class_names: Optional[list[str]] = None) -> np.ndarray:
    """Labels as class indices: integers (or whole floats) as they are, class names through
    ``class_names``; fractional numbers and unknown names are a ValueError naming them."""
    arr = as_array(labels).reshape(-1)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            raise ValueError(f"labels must be class indices or class names; got {float(arr[~whole][0])!r} at row "
                             f"{int(np.flatnonzero(~whole)[0])}")
        return arr.astype(np.int64)
    if class_names is None:
        raise ValueError(f"labels must be class indices (integers); got {arr.dtype} values")
    index = {name: i for i, name in enumerate(class_names)}
    names = [str(v) for v in arr]
    unknown = sorted({n for n in names if n not in index})
    if unknown:
        raise ValueError(f"labels: {len(unknown)} name(s) are not among the run's class_names "
                         f"({', '.join(map(repr, unknown[:5]))}{', ...' if len(unknown) > 5 else ''}); "
                         f"class_names are {class_names[:20]}")
    return np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))


class _Resource:
    """A server-side object: ``message`` is its API message, ``refresh()`` re-reads it."""

    def __init__(self, client: Client, message):
        self.client = client
        self.message = message

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def name(self) -> str:
        return self.message.name

    def _fetch(self):
        raise NotImplementedError

    def refresh(self):
        self.message = self._fetch().message
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, rows={self.message.num_rows})"


class Run(_Resource):
    """A run on the server; ``message`` is the API's Run."""

    def _fetch(self) -> "Run":
        return self.client.get_run(self.id)

    def log_predictions(self, sample_ids: Sequence[str], *arrays, embeddings=None, labels=None,
                        probabilities=None, metadata=None,
                        uris: Optional[Sequence[str]] = None, batch_size: int = 4096, logits: bool = False,
                        batch_id_prefix: str = "", progress: Union[bool, str] = "auto") -> IngestSummary:
        """Stream test-set predictions in batches, in the order ``Pool.add`` takes them:
        ``log_predictions(ids, embeddings, labels=y, probabilities=P, metadata=df, uris=u)``
        (``embeddings`` may be a keyword too). ``embeddings``: N x D; ``labels``: N class
        indices, or class names as in the run's ``class_names``; ``probabilities``: N x C (or
        raw scores with ``logits=True``); ``metadata``: one row per sample (see :data:`METADATA`).
        The older positional form ``(ids, labels, probabilities,
        embeddings[, metadata[, uris]])`` still works, with a DeprecationWarning."""
        given = {"embeddings": embeddings, "labels": labels, "probabilities": probabilities,
                 "metadata": metadata, "uris": uris}
        if len(arrays) == 1:
            names: tuple[str, ...] = ("embeddings",)
        elif 3 <= len(arrays) <= 5:
            names = _LEGACY_ORDER[:len(arrays)]
            warnings.warn("log_predictions(ids, labels, probabilities, embeddings) with positional arrays is "
                          "deprecated: pass log_predictions(ids, embeddings, labels=..., probabilities=...), "
                          "the order Pool.add takes", DeprecationWarning, stacklevel=2)
        elif arrays:
            raise TypeError(f"log_predictions takes the embeddings positionally and the rest by keyword "
                            f"(labels=..., probabilities=...); got {len(arrays)} positional arrays")
        else:
            names = ()
        for name, value in zip(names, arrays):
            if given[name] is not None:
                raise TypeError(f"log_predictions got multiple values for argument {name!r}")
            given[name] = value
        missing = [n for n in ("embeddings", "labels", "probabilities") if given[n] is None]
        if missing:
            raise TypeError(f"log_predictions needs {', '.join(missing)} (a run's rows carry embeddings, "
                            "labels and probabilities)")
        labels = _class_indices(given["labels"], list(self.message.class_names))
        return self.client._ingest(self.client.stub.IngestPredictions, "run_id", self.id, sample_ids,
                                   given["embeddings"], labels, given["probabilities"], given["metadata"],
                                   given["uris"], batch_size, logits, batch_id_prefix, progress)

    def diagnose(self, *, wait: bool = True, progress: Union[bool, str] = "auto", request_id: str = "",
                 **params) -> Union[Diagnosis, pb.Job]:
        """Start a diagnosis; with ``wait`` follow its progress and return the result.
        ``params``: fields of DiagnosisParams (min_cluster_size=..., fdr_alpha=...).
        ``request_id``: a call repeated with it (and the same params) follows the job the first one
        started unless that one failed; each call gets a fresh one otherwise, so this method's own
        retries start no second diagnosis.
        Interrupted while waiting (Ctrl-C, KeyboardInterrupt), it cancels the job it started
        before re-raising (the exception's ``cancelled_job`` then names it), rather than leave
        it running unseen; ``wait=False`` leaves the job to the caller (``client.cancel_job``)."""
        job = self.client._unary(self.client.stub.Diagnose, pb.DiagnoseRequest(
            run_id=self.id, params=_diagnosis_params(params), request_id=request_id or _request_id()))
        if not wait:
            return job
        try:
            job = self.client.wait_job(job.id, progress, label="diagnose")
        except KeyboardInterrupt as interrupt:
            try:
                self.client.cancel_job(job.id)
                interrupt.cancelled_job = job.id
            except BlindspotsError as exc:
                warnings.warn(f"diagnose: interrupted, and job {job.id} could not be cancelled ({exc}); "
                              "it may still be running on the server", UserWarning, stacklevel=2)
            raise
        return self.client.get_diagnosis(job.result_id)

    def latest_diagnosis(self) -> Diagnosis:
        return self.client.get_diagnosis(run_id=self.id)

    def suggest(self, pool: Union["Pool", str], budget: int, **kwargs) -> pd.DataFrame:
        pool_id = pool.id if isinstance(pool, Pool) else pool
        return self.client.suggest(self.id, pool_id, budget, **kwargs)

    def suggestion_sets(self, pool: Union["Pool", str, None] = None) -> pd.DataFrame:
        """The suggestion sets stored for this run (from ``pool`` only, if given), oldest first."""
        return self.client.list_suggestion_sets(self, pool)

    def delete(self, *, missing_ok: bool = False, force: bool = False) -> Optional[DeleteSummary]:
        """Delete this run on the server (see :meth:`Client.delete_run`)."""
        return self.client.delete_run(self.id, missing_ok=missing_ok, force=force)


class Pool(_Resource):
    """An unlabeled pool on the server; ``message`` is the API's Pool."""

    def _fetch(self) -> "Pool":
        return self.client.get_pool(self.id)

    def add(self, sample_ids: Sequence[str], embeddings, *, probabilities=None,
            metadata=None, uris: Optional[Sequence[str]] = None,
            batch_size: int = 4096, logits: bool = False, batch_id_prefix: str = "",
            progress: Union[bool, str] = "auto") -> IngestSummary:
        """Stream pool rows; ``probabilities`` only if the pool has num_classes; ``metadata`` as
        in :meth:`Run.log_predictions` (see :data:`METADATA`)."""
        return self.client._ingest(self.client.stub.IngestPool, "pool_id", self.id, sample_ids, embeddings,
                                   None, probabilities, metadata, uris, batch_size, logits, batch_id_prefix,
                                   progress)

    def delete(self, *, missing_ok: bool = False, force: bool = False) -> Optional[DeleteSummary]:
        """Delete this pool on the server (see :meth:`Client.delete_pool`)."""
        return self.client.delete_pool(self.id, missing_ok=missing_ok, force=force)

    def import_labels(self, labels: pd.DataFrame, source: str = "") -> LabelsSummary:
        """Store labels (sample_id, label) for this pool's samples; see Client.import_labels."""
        return self.client.import_labels(labels, pool_id=self.id, source=source)

    def labels(self, class_names: Optional[Sequence[str]] = None) -> pd.DataFrame:
        """Every label stored for this pool: (sample_id, uri, label, source, labeled_at)."""
        return self.client.labels_frame(pool_id=self.id, class_names=class_names)


__all__ = ["BlindspotsError", "Client", "IngestSummary", "LabelsSummary", "Pool", "Run"]
