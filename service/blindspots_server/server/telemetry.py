"""Prometheus metrics of the service and of model quality.

Each server owns a registry (so several servers in one process, as in tests,
don't collide); metric objects are defined once here, with units in names.
Label cardinality is bounded: RPC metrics cover only the methods the server
registered; quality metrics cover the top-K slices/regions of each run's latest
diagnosis and at most ``max_runs`` runs (the least recently diagnosed retired).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable, Iterable, Optional

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from blindspots.v1 import blindspots_pb2 as pb

from ..core.suggest import STRATEGIES
from ..storage import JobBacklog, JobRecord, NotFound, RunRecord, Store
from .comparison import regressions
from .jobs import JOB_KINDS

log = logging.getLogger("blindspots.telemetry")

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_QUEUE_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Label values known up front are exported at zero from the start, so that
# rate() sees the first increment instead of a series appearing mid-window.
_INGEST_TARGETS = ("run", "pool")
_JOB_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
STORE_SIZE_MAX_AGE_S = 30.0   # the data directory is walked at most this often
JOB_BACKLOG_MAX_AGE_S = 5.0   # the catalog's unfinished jobs are counted at most this often


def rpc_type(method) -> str:
    """go-grpc-prometheus' grpc_type of a method descriptor."""
    if method.client_streaming and method.server_streaming:
        return "bidi_stream"
    if method.client_streaming:
        return "client_stream"
    if method.server_streaming:
        return "server_stream"
    return "unary"


class _Cached:
    """``read()``'s value, read again at most every ``max_age_s`` seconds; while a read fails (a
    closed store, a catalog unreachable for a while) the last value stays, so a scrape never breaks."""

    def __init__(self, read: Callable[[], object], max_age_s: float, what: str):
        self._read, self._max_age_s, self._what = read, max_age_s, what
        self._value: object = None
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._at > self._max_age_s:
                try:
                    self._value, self._at = self._read(), now
                except Exception:
                    log.debug("%s unavailable", self._what, exc_info=True)
            return self._value


class _StoreSizeCollector(Collector):
    """``blindspots_store_size_bytes`` computed at scrape time, cached briefly."""

    def __init__(self, store: Store, max_age_s: float = STORE_SIZE_MAX_AGE_S):
        self._size = _Cached(lambda: float(store.size_bytes()), max_age_s, "store size")

    def collect(self):
        value = self._size.get()
        if value is not None:
            yield GaugeMetricFamily("blindspots_store_size_bytes", "Bytes on disk of the data directory",
                                    value=value)


class _JobBacklogCollector(Collector):
    """``blindspots_jobs`` (pending, running) and ``blindspots_jobs_oldest_pending_age_seconds``,
    read from the catalog at scrape time (cached briefly): a backlog shows before its jobs finish.
    With a shared catalog every replica reports the same numbers, the whole queue's."""

    def __init__(self, store: Store, max_age_s: float = JOB_BACKLOG_MAX_AGE_S):
        self._backlog = _Cached(store.job_backlog, max_age_s, "job backlog")

    def collect(self):
        backlog: Optional[JobBacklog] = self._backlog.get()
        if backlog is None:
            return
        jobs = GaugeMetricFamily("blindspots_jobs", "Jobs not finished yet, in the catalog (every replica's)",
                                 labels=["state"])
        jobs.add_metric(["PENDING"], backlog.pending)
        jobs.add_metric(["RUNNING"], backlog.running)
        yield jobs
        waited = 0.0 if backlog.oldest_pending_at is None else max(0.0, time.time() - backlog.oldest_pending_at)
        yield GaugeMetricFamily("blindspots_jobs_oldest_pending_age_seconds", "How long the job waiting longest "
                                "to start has waited (0: none waits)", value=waited)


class Telemetry:
    def __init__(self, registry: Optional[CollectorRegistry] = None, top_k: int = 10, max_runs: int = 50,
                 enabled: bool = True):
        self.enabled = enabled
        self.registry = registry or CollectorRegistry()
        self.top_k = top_k
        self.max_runs = max_runs
        r = self.registry
        rpc_labels = ["grpc_service", "grpc_method", "grpc_type"]
        # Names and labels follow go-grpc-prometheus, so stock gRPC dashboards and alerts apply.
        self.rpc_started_total = Counter("grpc_server_started_total", "RPCs started on the server",
                                         rpc_labels, registry=r)
        self.rpc_handled_total = Counter("grpc_server_handled_total", "RPCs completed, by status code",
                                         rpc_labels + ["grpc_code"], registry=r)
        self.rpc_handling_seconds = Histogram("grpc_server_handling_seconds", "RPC wall time until the last "
                                              "response (whole stream for streaming RPCs)", rpc_labels,
                                              buckets=_LATENCY_BUCKETS, registry=r)
        self.rows_ingested_total = Counter("blindspots_ingested_rows_total", "Rows stored", ["target"], registry=r)
        self.bytes_ingested_total = Counter("blindspots_ingested_bytes_total", "Request bytes of stored batches",
                                            ["target"], registry=r)
        self.job_duration_seconds = Histogram("blindspots_job_duration_seconds", "Job wall time",
                                              ["kind", "state"], buckets=_LATENCY_BUCKETS, registry=r)
        self.job_queue_seconds = Histogram("blindspots_job_queue_seconds", "Time from a job's submission to its "
                                           "start", ["kind"], buckets=_QUEUE_BUCKETS, registry=r)
        self.deleted_total = Counter("blindspots_deleted_total", "Runs and pools deleted", ["target"], registry=r)
        self.deleted_bytes_total = Counter("blindspots_deleted_bytes_total", "Bytes of data files removed by "
                                           "deletions (as recorded at write)", ["target"], registry=r)
        self.index_rows = Gauge("blindspots_pool_index_rows", "Rows in a pool's faiss index", ["pool_id"],
                                registry=r)
        self.suggestions_total = Counter("blindspots_suggestions_served_total", "Candidates returned",
                                         ["strategy"], registry=r)
        self.index_evictions_total = Counter(
            "blindspots_pool_index_evictions_total", "In-process pool indexes let go to stay under "
            "index_memory_mb (loaded from the store when next needed)", registry=r)
        self.index_memory_bytes = Gauge("blindspots_pool_index_memory_bytes", "Estimated memory of the pool "
                                        "indexes held in the server's process", registry=r)
        self.jobs_pruned_total = Counter(
            "blindspots_jobs_pruned_total", "Finished jobs' records deleted past job_retention_days", registry=r)
        self.runs_pruned_total = Counter(
            "blindspots_runs_pruned_total", "Runs deleted past run_retention_days (unused that long)", registry=r)
        self.pools_pruned_total = Counter(
            "blindspots_pools_pruned_total", "Pools deleted past pool_retention_days (unused that long)", registry=r)
        self.shard_evictions_total = Counter(
            "blindspots_pool_index_shard_evictions_total", "Pools' index shards this server stopped to keep the "
            "cluster's shards under shard_memory_mb (built again when next needed)", registry=r)
        self.shard_memory_bytes = Gauge(
            "blindspots_pool_index_shards_memory_bytes", "Estimated memory of every pool's index shards on the "
            "cluster, as the cluster reported it when this server last asked for shards", registry=r)
        for target in _INGEST_TARGETS:
            self.rows_ingested_total.labels(target)
            self.bytes_ingested_total.labels(target)
            self.deleted_total.labels(target)
            self.deleted_bytes_total.labels(target)
        for kind in JOB_KINDS:
            self.job_queue_seconds.labels(kind)
            for state in _JOB_STATES:
                self.job_duration_seconds.labels(kind, state)
        for strategy in STRATEGIES:
            self.suggestions_total.labels(strategy)
        labels = ["project", "run_id", "model", "model_version"]
        self.run_error_rate = Gauge("blindspots_run_error_rate", "Overall test error rate of a run's "
                                    "latest diagnosis", labels, registry=r)
        self.run_samples = Gauge("blindspots_run_samples", "Test rows diagnosed", labels, registry=r)
        self.run_diagnosed_at = Gauge("blindspots_run_diagnosis_timestamp_seconds", "When a run's latest "
                                      "diagnosis was made (unix time)", labels, registry=r)
        slice_labels = labels + ["slice"]
        self.slice_error_rate = Gauge("blindspots_slice_error_rate", "Error rate of a top slice",
                                      slice_labels, registry=r)
        self.slice_support = Gauge("blindspots_slice_support", "Rows in a top slice", slice_labels, registry=r)
        self.slice_lift = Gauge("blindspots_slice_lift", "Slice error rate over baseline", slice_labels,
                                registry=r)
        # "slice": the region's best-explaining metadata slice ("" when none explains it);
        # region ids are numbered per diagnosis, so only the slice is comparable across runs.
        region_labels = labels + ["region", "kind", "slice"]
        self.region_error_rate = Gauge("blindspots_region_error_rate", "Error rate of a failure region",
                                       region_labels, registry=r)
        self.region_support = Gauge("blindspots_region_support", "Rows in a failure region", region_labels,
                                    registry=r)
        self.region_excess_errors = Gauge("blindspots_region_excess_errors", "Failures above baseline",
                                          region_labels, registry=r)
        # The worst classes of a run (Diagnosis.classes, with test rows): the class names are the
        # run's own, so a class keeps its series across versions of a model.
        class_labels = labels + ["class"]
        self.class_error_rate = Gauge("blindspots_class_error_rate", "Error rate of one of a run's worst classes",
                                      class_labels, registry=r)
        self.class_recall = Gauge("blindspots_class_recall", "Recall of one of a run's worst classes", class_labels,
                                  registry=r)
        self.class_support = Gauge("blindspots_class_support", "Test rows of one of a run's worst classes",
                                   class_labels, registry=r)
        # A run against the previous version of its model (Diagnosis.previous_version): how much
        # got significantly worse, as `blindspots compare --fail-on-regression` counts it. The
        # baseline is named by its version only: its run may be deleted while this one stays.
        version_labels = labels + ["baseline_version"]
        self.version_regressions = Gauge("blindspots_version_regressions", "Findings (overall, regions, "
                                         "slices) significantly worse than in the previous version",
                                         version_labels, registry=r)
        self.version_regression_difference = Gauge(
            "blindspots_version_regression_difference", "Error rate now minus in the previous version, "
            "of each finding significantly worse (the worst top-K)", version_labels + ["scope", "name"],
            registry=r)
        self._exported: OrderedDict[str, list[tuple[Gauge, tuple]]] = OrderedDict()
        self._exported_diagnosis: dict[str, tuple[float, str]] = {}   # run id -> (created_at, diagnosis id)
        self._index_pools: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def disabled(cls) -> "Telemetry":
        return cls(enabled=False)

    # ------------------------------------------------------------ service
    def register_methods(self, services: Iterable[ServiceDescriptor]) -> dict[str, tuple[str, str, str]]:
        """Export every method of ``services`` at zero; return the label values by full method path."""
        methods = {}
        for service in services:
            for m in service.methods:
                labels = (service.full_name, m.name, rpc_type(m))
                methods[f"/{service.full_name}/{m.name}"] = labels
                self.rpc_started_total.labels(*labels)
                for code in grpc.StatusCode:   # as go-grpc-prometheus does: every code from the start
                    self.rpc_handled_total.labels(*labels, code.name)
                self.rpc_handling_seconds.labels(*labels)
        return methods

    def rpc_started(self, labels: tuple[str, str, str]) -> None:
        self.rpc_started_total.labels(*labels).inc()

    def rpc_handled(self, labels: tuple[str, str, str], code: str, seconds: float) -> None:
        self.rpc_handled_total.labels(*labels, code).inc()
        self.rpc_handling_seconds.labels(*labels).observe(seconds)

    def watch_store(self, store: Store) -> None:
        """Export the store's size and its unfinished jobs at scrape time."""
        self.registry.register(_StoreSizeCollector(store))
        self.registry.register(_JobBacklogCollector(store))

    def rows_ingested(self, target: str, rows: int, nbytes: int) -> None:
        self.rows_ingested_total.labels(target).inc(rows)
        self.bytes_ingested_total.labels(target).inc(nbytes)

    def job_started(self, job: JobRecord, waited_s: float) -> None:
        self.job_queue_seconds.labels(job.kind).observe(waited_s)

    def job_finished(self, job: JobRecord, seconds: float) -> None:
        self.job_duration_seconds.labels(job.kind, job.state).observe(seconds)

    def index_evicted(self, pool_id: str) -> None:
        self.index_evictions_total.inc()

    def shards_held(self, evicted: int, held_bytes: int) -> None:
        """What an ask for a pool's shards reported: shards stopped under shard_memory_mb, and the
        memory of those the cluster holds now."""
        self.shard_evictions_total.inc(evicted)
        self.shard_memory_bytes.set(held_bytes)

    def track_index_memory(self, loaded_bytes: Callable[[], int]) -> None:
        """Export ``loaded_bytes()`` at scrape time."""
        self.index_memory_bytes.set_function(loaded_bytes)

    def index_size(self, pool_id: str, rows: int) -> None:
        with self._lock:
            self.index_rows.labels(pool_id).set(rows)
            self._index_pools.add(pool_id)

    def deleted(self, target: str, target_id: str, nbytes: int) -> None:
        """Count a deletion; a deleted run's quality series, or a deleted pool's index size, leave
        the exposition."""
        self.deleted_total.labels(target).inc()
        self.deleted_bytes_total.labels(target).inc(nbytes)
        with self._lock:
            if target == "run":
                self._retire(target_id)
            else:
                self._index_pools.discard(target_id)
                try:
                    self.index_rows.remove(target_id)
                except KeyError:
                    pass

    def suggestions_served(self, strategy: str, n: int) -> None:
        self.suggestions_total.labels(strategy).inc(n)

    # ------------------------------------------------------------ model quality
    def diagnosis_saved(self, run: RunRecord, d: pb.Diagnosis) -> None:
        """Export a run's new diagnosis (its series replace the run's earlier ones)."""
        with self._lock:
            self._export(run, d)

    def _export(self, run: RunRecord, d: pb.Diagnosis) -> None:
        base = (run.project, run.id, run.model_name, run.model_version)
        series: list[tuple[Gauge, tuple]] = []

        def put(gauge: Gauge, labels: tuple, value: float) -> None:
            gauge.labels(*labels).set(value)
            series.append((gauge, labels))

        created = d.created_at.ToNanoseconds() / 1e9 if d.HasField("created_at") else time.time()
        self._retire(run.id)
        put(self.run_error_rate, base, d.baseline_error_rate)
        put(self.run_samples, base, d.num_samples)
        put(self.run_diagnosed_at, base, created)
        # Top-K slices of this version, then up to 2K slices that were top slices of
        # other versions of the model: a fixed slice keeps its series, at its new rate.
        for s in list(d.slices[: self.top_k]) + list(d.tracked_slices[: 2 * self.top_k]):
            put(self.slice_error_rate, base + (s.name,), s.error_rate)
            put(self.slice_support, base + (s.name,), s.support)
            put(self.slice_lift, base + (s.name,), s.lift)
        for reg in d.regions[: self.top_k]:
            explained_by = reg.explanations[0].name if reg.explanations else ""
            labels = base + (str(reg.id), pb.RegionKind.Name(reg.kind).lower(), explained_by)
            put(self.region_error_rate, labels, reg.error_rate)
            put(self.region_support, labels, reg.support)
            put(self.region_excess_errors, labels, reg.excess_errors)
        for c in [c for c in d.classes if c.support][: self.top_k]:
            put(self.class_error_rate, base + (c.name,), c.error_rate)
            put(self.class_recall, base + (c.name,), c.recall)
            put(self.class_support, base + (c.name,), c.support)
        if d.HasField("previous_version"):
            c = d.previous_version
            versus = base + (c.model_version_a or c.run_id_a,)
            found = regressions(c)
            put(self.version_regressions, versus, len(found))
            for scope, name, difference in found[: self.top_k]:
                put(self.version_regression_difference, versus + (scope, name), difference)
        self._exported[run.id] = series
        self._exported_diagnosis[run.id] = (created, d.id)
        while len(self._exported) > self.max_runs:
            self._retire(next(iter(self._exported)))

    def sync(self, store: Store) -> int:
        """Bring the exported quality series in line with the store; return how many runs
        are exported.

        Exports the latest diagnosis of the ``max_runs`` runs diagnosed most recently, and
        retires every other run's series. A restarted server calls it so that its dashboards
        don't go blank; the replicas of a shared store call it every ``replica_sync_s``, so
        that each exports the diagnoses the others made and drops the runs they deleted.
        Reads one listing and, for each run whose exported diagnosis is not its latest, that
        run and diagnosis; holds one payload at a time.
        """
        with self._lock:
            before = dict(self._exported_diagnosis)
        recent = store.recent_diagnoses(self.max_runs)          # newest first
        wanted = {run_id for run_id, _, _ in recent}
        with self._lock:
            for run_id in before.keys() - wanted:
                # Unless this server exported a newer diagnosis of it since the listing was read.
                if self._exported_diagnosis.get(run_id) == before[run_id]:
                    self._retire(run_id)
        for run_id, diagnosis_id, created in reversed(recent):   # oldest first: retirement order
            if before.get(run_id, (None, None))[1] == diagnosis_id:
                continue
            try:
                run = store.get_run(run_id)
                message = pb.Diagnosis.FromString(store.get_diagnosis(diagnosis_id).payload)
            except NotFound:        # deleted since the listing: the next sync drops it
                continue
            except Exception:       # one unreadable payload must not stop the others (or a start-up)
                log.warning("could not export diagnosis %s of run %s", diagnosis_id, run_id, exc_info=True)
                continue
            with self._lock:
                exported = self._exported_diagnosis.get(run_id)
                if exported is None or exported[0] <= created:
                    self._export(run, message)
        self._sync_index_sizes(store)
        with self._lock:
            return len(self._exported)

    def _sync_index_sizes(self, store: Store, page: int = 500) -> None:
        """Each pool's index size as the catalog records it; a deleted pool's series goes."""
        sizes = {pool.id: pool.index_rows
                 for pool in _all(lambda limit, offset: store.list_pools(None, limit, offset), page)
                 if pool.index_rows}
        with self._lock:
            for pool_id in self._index_pools - sizes.keys():
                try:
                    self.index_rows.remove(pool_id)
                except KeyError:
                    pass
            for pool_id, rows in sizes.items():
                self.index_rows.labels(pool_id).set(rows)
            self._index_pools = set(sizes)

    def _retire(self, run_id: str) -> None:
        self._exported_diagnosis.pop(run_id, None)
        for gauge, labels in self._exported.pop(run_id, []):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass


def _all(fetch, page: int):
    """Every record of a paged listing ``fetch(limit, offset)``."""
    offset = 0
    while True:
        batch = fetch(page, offset)
        yield from batch
        if len(batch) < page:
            return
        offset += page
