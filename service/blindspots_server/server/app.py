"""Assemble and run the gRPC server: servicer, interceptors, health, reflection, metrics."""
from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from typing import Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from prometheus_client import start_http_server

from blindspots.v1 import blindspots_pb2 as pb
from blindspots.v1 import blindspots_pb2_grpc as pb_grpc

from ..config import MiB, ServerConfig
from ..core.pool_index import index_device
from ..storage import Conflict, NotFound, open_store
from .auth import auth_from_config
from .errors import ErrorMappingInterceptor
from .interceptors import ObservabilityInterceptor, configure_access_log
from .servicer import BlindspotsServicer
from .stream_limits import StreamGuardInterceptor
from .telemetry import Telemetry
from .tracing import Tracing

log = logging.getLogger("blindspots.server")
RETENTION_EVERY_S = 3600.0    # how often unused runs and pools, and finished jobs, past their retention go
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Blindspots"].full_name
_OBSERVED_SERVICES = (pb.DESCRIPTOR.services_by_name["Blindspots"], health_pb2.DESCRIPTOR.services_by_name["Health"],
                      reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"])


class BlindspotsServer:
    """A running blindspots service. ``start()`` binds; ``port`` is the bound port."""

    def __init__(self, config: ServerConfig):
        self.config = config
        for name in ("job_retention_days", "run_retention_days", "pool_retention_days"):
            if getattr(config, name) < 0:
                raise ValueError(f"{name} must be 0 (keep them all) or more, not {getattr(config, name)}")
        for name in ("ray_shard_gpus", "ray_shard_threads"):
            if getattr(config, name) and not config.ray_address:
                raise ValueError(f"{name} needs ray_address (a server's own pool indexes use a GPU whenever faiss-gpu "
                                 "sees one, and every core)")
        access, auth_interceptors = auth_from_config(config)    # before opening: a bad token file fails fast
        self.store = open_store(config.store or config.data_dir, config.files or None)
        self.telemetry = Telemetry(top_k=config.metrics_top_k, max_runs=config.metrics_max_runs)
        self.telemetry.watch_store(self.store)
        self.telemetry.sync(self.store)       # so that a restart doesn't blank the dashboards
        self.tracing = Tracing(config.otlp_endpoint)
        self.servicer = BlindspotsServicer(self.store, config, access=access, telemetry=self.telemetry,
                                           tracing=self.tracing)
        limit = config.max_message_mb * MiB
        if config.max_client_streams >= config.rpc_workers:
            raise ValueError(f"max_client_streams ({config.max_client_streams}) must be below rpc_workers "
                             f"({config.rpc_workers}), so that streams cannot take every thread")
        self.streams = StreamGuardInterceptor(config.max_client_streams, config.max_client_streams_per_peer,
                                              config.stream_first_message_s, config.stream_idle_s)
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.rpc_workers, thread_name_prefix="rpc"),
            # Observability first (outermost): it sees the final code, auth rejections included.
            # The stream guard sits inside error mapping, so its refusals get their status.
            interceptors=[ObservabilityInterceptor(self.telemetry, _OBSERVED_SERVICES, self.tracing),
                          ErrorMappingInterceptor(),
                          self.streams, *auth_interceptors],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)])
        pb_grpc.add_BlindspotsServicer_to_server(self.servicer, self._grpc)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), self._grpc)
        self.port: int = 0
        self.metrics_port: Optional[int] = None
        self._metrics_server = None
        self._stopping = threading.Event()
        self._sync_thread: Optional[threading.Thread] = None
        self._retention_thread: Optional[threading.Thread] = None

    def start(self) -> "BlindspotsServer":
        address = f"{self.config.host}:{self.config.port}"
        credentials = _server_credentials(self.config)
        self.port = (self._grpc.add_secure_port(address, credentials) if credentials
                     else self._grpc.add_insecure_port(address))
        if self.port == 0:
            raise RuntimeError(f"could not bind {address}")
        self._grpc.start()
        if self.config.metrics_port:
            self._metrics_server, _ = start_http_server(self.config.metrics_port, addr=self.config.host,
                                                        registry=self.telemetry.registry)
            self.metrics_port = self._metrics_server.server_port
        if self.store.shared and self.config.replica_sync_s > 0:
            self._sync_thread = threading.Thread(target=self._sync_loop, name="replica-sync", daemon=True)
            self._sync_thread.start()
        if max(self.config.job_retention_days, self.config.run_retention_days, self.config.pool_retention_days) > 0:
            self._retention_thread = threading.Thread(target=self._retention_loop, name="retention", daemon=True)
            self._retention_thread.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("blindspots serving on %s:%d (store %s)", self.config.host, self.port,
                 _redacted(self.config.store) or self.config.data_dir)
        log.info("pool indexes in this process run on the %s: %s", *index_device())
        if self.config.ray_address:
            log.info("heavy steps and pool index shards on the %s", self.servicer.compute.name)
        return self

    def sync_with_store(self) -> None:
        """Catch up with what other replicas of a shared store did: export the diagnoses they
        made, drop the series of runs and the indexes of pools they deleted."""
        self.telemetry.sync(self.store)
        gone = self.servicer.indexes.forget_deleted()
        if gone:
            log.info("dropped the loaded indexes of %d pool(s) deleted elsewhere: %s", len(gone), ", ".join(gone))

    def prune_jobs(self) -> int:
        """Delete the records of the jobs that ended more than ``job_retention_days`` ago (their
        diagnoses and indexes stay); how many went. Replicas of a shared store may all do it."""
        days = self.config.job_retention_days
        if days <= 0:
            return 0
        pruned = self.store.prune_jobs(time.time() - days * 86400.0)
        if pruned:
            self.telemetry.jobs_pruned_total.inc(pruned)
            log.info("deleted the records of %d job(s) that ended over %d day(s) ago (job_retention_days)",
                     pruned, days)
        return pruned

    def prune_runs(self) -> int:
        """Delete the runs unused for ``run_retention_days`` (:meth:`Store.stale`: no ingest,
        diagnosis or suggestion set since, not the newest of their model), each as DeleteRun does
        without ``force``; how many went. See :meth:`_prune_unused`."""
        return self._prune_unused("run", self.config.run_retention_days, self.telemetry.runs_pruned_total)

    def prune_pools(self) -> int:
        """Delete the pools unused for ``pool_retention_days`` (:meth:`Store.stale`: no ingest or
        suggestion set since, not the newest of their project), each as DeletePool does without
        ``force``; how many went. See :meth:`_prune_unused`."""
        return self._prune_unused("pool", self.config.pool_retention_days, self.telemetry.pools_pruned_total)

    def _prune_unused(self, target: str, days: int, counter) -> int:
        """A run with a job pending or running, or a run or pool holding labels from a labeling tool,
        is kept (logged) and asked about again at the next sweep. Replicas of a shared store may all
        do it: one another replica deleted first is passed over."""
        if days <= 0:
            return 0
        deleted, freed, kept = 0, 0, []
        for record in self.store.stale(target, time.time() - days * 86400.0):
            if self._stopping.is_set():
                break
            try:
                freed += self.servicer.delete_target(target, record.id, force=False).bytes
            except NotFound:
                continue
            except Conflict as exc:
                kept.append(f"{record.id} ({exc})")
                continue
            deleted += 1
            counter.inc()
        if deleted:
            log.info("deleted %d %s(s) unused for over %d day(s) (%s_retention_days), %d bytes", deleted, target,
                     days, target, freed)
        if kept:
            log.warning("kept %d %s(s) unused for over %d day(s) (%s_retention_days): %s", len(kept), target, days,
                        target, "; ".join(kept))
        return deleted

    def _retention_loop(self) -> None:
        while True:
            # Runs and pools first: their jobs go with them.
            for prune, what in ((self.prune_runs, "runs"), (self.prune_pools, "pools"),
                                (self.prune_jobs, "finished jobs")):
                try:
                    prune()
                except Exception:   # the catalog unreachable for a while: try again at the next tick
                    log.warning("deleting old %s failed; retrying in %d s", what, RETENTION_EVERY_S, exc_info=True)
            if self._stopping.wait(RETENTION_EVERY_S):
                return

    def _sync_loop(self) -> None:
        while not self._stopping.wait(self.config.replica_sync_s):
            try:
                self.sync_with_store()
            except Exception:   # the catalog unreachable for a while: try again at the next tick
                log.warning("replica sync failed; retrying in %d s", self.config.replica_sync_s, exc_info=True)

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self._stopping.set()
        for thread in (self._sync_thread, self._retention_thread):
            if thread is not None:
                thread.join()
        self._grpc.stop(grace).wait()
        self.streams.close()
        self.servicer.shutdown()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.tracing.shutdown()
        self.store.close()

    def wait(self) -> None:
        self._grpc.wait_for_termination()


def _redacted(uri: str) -> str:
    """A store URI without its password, for logs."""
    if "@" not in uri or "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"


def _server_credentials(config: ServerConfig) -> Optional[grpc.ServerCredentials]:
    """TLS credentials from the configured PEM files; None for plaintext."""
    if not config.tls_cert and not config.tls_key:
        return None
    if not (config.tls_cert and config.tls_key):
        raise ValueError("TLS needs both tls_cert and tls_key")
    with open(config.tls_key, "rb") as key, open(config.tls_cert, "rb") as cert:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])


def serve(config: ServerConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    configure_access_log()
    server = BlindspotsServer(config).start()
    stopped = threading.Event()
    stopping: list[threading.Thread] = []

    def on_signal(signum, frame):
        if not stopped.is_set():
            stopped.set()
            stopping.append(threading.Thread(target=server.stop, daemon=True))
            stopping[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"blindspots listening on {config.host}:{server.port}"
          + (f", metrics on :{server.metrics_port}" if server.metrics_port else ""), flush=True)
    server.wait()
    # gRPC has stopped; the rest of stop() (jobs, the buffered trace spans, the store) finishes
    # before the process ends.
    for thread in stopping:
        thread.join(timeout=60)
