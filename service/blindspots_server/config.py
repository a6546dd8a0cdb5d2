"""Server configuration: the one module that reads the environment.

Every setting has an environment variable (BLINDSPOTS_<NAME>) and a CLI flag of
`blindspots serve`; flags win over the environment, which wins over defaults.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Optional

MiB = 1024 * 1024


@dataclass
class ServerConfig:
    data_dir: str = "./blindspots-data"      # embedded store location
    store: str = ""                          # a store URI (postgresql://...); empty: the embedded store in data_dir
    files: str = ""                          # row files of a postgresql store: a shared directory, s3://, gs://
    job_lease_s: int = 30                    # shared stores: a job whose server stopped renewing for this long is re-run
    replica_sync_s: int = 15                 # shared stores: how often a replica catches up with the others' diagnoses
                                             # and deletions (its quality metrics, its loaded indexes); 0: never
    ray_address: str = ""                    # run heavy steps on this Ray cluster ("auto", "host:port"); empty: here
    index_shards: int = 0                    # pool index shards; 0: 1 in-process, one per Ray node with ray_address
    ray_shard_gpus: float = 0.0              # GPUs each Ray index shard asks for (0.25: four share one), its index
                                             # then on the GPU (faiss-gpu in the workers); 0: shards on the CPU
    ray_shard_threads: int = 0               # faiss threads of each Ray index shard; 0: the smallest node's CPUs
                                             # (as Ray declares them) over the shards each node holds
    index_memory_mb: int = 0                 # in-process pool indexes held, in all (estimated); past it the least
                                             # recently used go, loaded from the store when next needed; 0: no limit
    shard_memory_mb: int = 0                 # Ray index shards of every pool, in all (estimated); past it the least
                                             # recently asked-for pools' shards are stopped, built again from the row
                                             # files when next needed; 0: no limit (give every server the same)
    host: str = "127.0.0.1"
    port: int = 50051                        # 0: pick a free port
    metrics_port: int = 0                    # Prometheus /metrics; 0: disabled
    otlp_endpoint: str = ""                  # OpenTelemetry traces over OTLP/HTTP (http://collector:4318); empty:
                                             # the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else no tracing
    max_message_mb: int = 64                 # gRPC max receive/send message size
    rpc_workers: int = 32                    # threads serving RPCs
    max_client_streams: int = 24             # open ingest streams, in all (< rpc_workers: threads stay free)
    max_client_streams_per_peer: int = 16    # open ingest streams from one client address
    stream_first_message_s: int = 30         # a client stream must send its first message within this
    stream_idle_s: int = 300                 # ... and each next one within this, while the server waits
    job_workers: int = 2                     # threads running diagnoses and index builds
    job_retention_days: int = 30             # finished jobs (their records, not their results) are deleted this
                                             # long after they ended; checked at start and hourly; 0: kept forever
    run_retention_days: int = 0              # runs unused this long (no ingest, diagnosis, suggestion set) are deleted
                                             # with everything they own, but the newest of each model; 0: kept
    pool_retention_days: int = 0             # pools unused this long (no ingest, suggestion set) are deleted with
                                             # everything they own, but the newest of each project; 0: kept
    max_budget: int = 100_000                # largest Suggest budget accepted
    max_batch_rows: int = 200_000            # largest ingest batch accepted
    metrics_top_k: int = 10                  # slices/regions exported per run
    metrics_max_runs: int = 50               # runs whose quality metrics are exported
    auth_tokens_file: Optional[str] = None   # JSON {token: [projects]} ("*": all); unset: no auth
    tokens: Optional[str] = field(default=None, repr=False)   # same JSON inline (env BLINDSPOTS_TOKENS)
    tls_cert: Optional[str] = None           # PEM server certificate; unset: plaintext
    tls_key: Optional[str] = None
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Optional[dict[str, str]] = None, **overrides) -> "ServerConfig":
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f"BLINDSPOTS_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = (int(raw) if f.type in ("int", int) else float(raw) if f.type in ("float", float)
                                  else raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
