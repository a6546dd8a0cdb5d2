"""Prometheus metrics of the service and of model quality.

Each server owns a registry (so several servers in one process, as in tests,
don't collide); metric objects are defined once here, with units in names.
Label cardinality is bounded: quality metrics cover the top-K slices/regions of
each run's latest diagnosis and at most ``max_runs`` runs (oldest retired).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from blindspots.v1 import blindspots_pb2 as pb

from ..storage import JobRecord, RunRecord

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Telemetry:
    def __init__(self, registry: Optional[CollectorRegistry] = None, top_k: int = 10, max_runs: int = 50,
                 enabled: bool = True):
        self.enabled = enabled
        self.registry = registry or CollectorRegistry()
        self.top_k = top_k
        self.max_runs = max_runs
        r = self.registry
        self.rows_ingested_total = Counter("blindspots_ingested_rows_total", "Rows stored", ["target"], registry=r)
        self.bytes_ingested_total = Counter("blindspots_ingested_bytes_total", "Request bytes of stored batches",
                                            ["target"], registry=r)
        self.job_duration_seconds = Histogram("blindspots_job_duration_seconds", "Job wall time",
                                              ["kind", "state"], buckets=_LATENCY_BUCKETS, registry=r)
        self.index_rows = Gauge("blindspots_pool_index_rows", "Rows in a pool's faiss index", ["pool_id"],
                                registry=r)
        self.suggestions_total = Counter("blindspots_suggestions_served_total", "Candidates returned",
                                         ["strategy"], registry=r)
        labels = ["project", "run_id", "model", "model_version"]
        self.run_error_rate = Gauge("blindspots_run_error_rate", "Overall test error rate of a run's "
                                    "latest diagnosis", labels, registry=r)
        self.run_samples = Gauge("blindspots_run_samples", "Test rows diagnosed", labels, registry=r)
        slice_labels = labels + ["slice"]
        self.slice_error_rate = Gauge("blindspots_slice_error_rate", "Error rate of a top slice",
                                      slice_labels, registry=r)
        self.slice_support = Gauge("blindspots_slice_support", "Rows in a top slice", slice_labels, registry=r)
        self.slice_lift = Gauge("blindspots_slice_lift", "Slice error rate over baseline", slice_labels,
                                registry=r)
        region_labels = labels + ["region", "kind"]
        self.region_error_rate = Gauge("blindspots_region_error_rate", "Error rate of a failure region",
                                       region_labels, registry=r)
        self.region_support = Gauge("blindspots_region_support", "Rows in a failure region", region_labels,
                                    registry=r)
        self.region_excess_errors = Gauge("blindspots_region_excess_errors", "Failures above baseline",
                                          region_labels, registry=r)
        self._exported: OrderedDict[str, list[tuple[Gauge, tuple]]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def disabled(cls) -> "Telemetry":
        return cls(enabled=False)

    # ------------------------------------------------------------ service
    def rows_ingested(self, target: str, rows: int, nbytes: int) -> None:
        self.rows_ingested_total.labels(target).inc(rows)
        self.bytes_ingested_total.labels(target).inc(nbytes)

    def job_finished(self, job: JobRecord, seconds: float) -> None:
        self.job_duration_seconds.labels(job.kind, job.state).observe(seconds)

    def index_size(self, pool_id: str, rows: int) -> None:
        self.index_rows.labels(pool_id).set(rows)

    def suggestions_served(self, strategy: str, n: int) -> None:
        self.suggestions_total.labels(strategy).inc(n)

    # ------------------------------------------------------------ model quality
    def diagnosis_saved(self, run: RunRecord, d: pb.Diagnosis) -> None:
        base = (run.project, run.id, run.model_name, run.model_version)
        series: list[tuple[Gauge, tuple]] = []

        def put(gauge: Gauge, labels: tuple, value: float) -> None:
            gauge.labels(*labels).set(value)
            series.append((gauge, labels))

        with self._lock:
            self._retire(run.id)
            put(self.run_error_rate, base, d.baseline_error_rate)
            put(self.run_samples, base, d.num_samples)
            for s in d.slices[: self.top_k]:
                put(self.slice_error_rate, base + (s.name,), s.error_rate)
                put(self.slice_support, base + (s.name,), s.support)
                put(self.slice_lift, base + (s.name,), s.lift)
            for reg in d.regions[: self.top_k]:
                labels = base + (str(reg.id), pb.RegionKind.Name(reg.kind).lower())
                put(self.region_error_rate, labels, reg.error_rate)
                put(self.region_support, labels, reg.support)
                put(self.region_excess_errors, labels, reg.excess_errors)
            self._exported[run.id] = series
            while len(self._exported) > self.max_runs:
                self._retire(next(iter(self._exported)))

    def _retire(self, run_id: str) -> None:
        for gauge, labels in self._exported.pop(run_id, []):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
