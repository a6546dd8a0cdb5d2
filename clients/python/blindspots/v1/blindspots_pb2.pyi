import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ColumnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLUMN_TYPE_UNSPECIFIED: _ClassVar[ColumnType]
    COLUMN_TYPE_STRING: _ClassVar[ColumnType]
    COLUMN_TYPE_NUMBER: _ClassVar[ColumnType]
    COLUMN_TYPE_TIMESTAMP: _ClassVar[ColumnType]

class RegionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGION_KIND_UNSPECIFIED: _ClassVar[RegionKind]
    DATA_GAP: _ClassVar[RegionKind]
    LABEL_NOISE: _ClassVar[RegionKind]
    MIXED: _ClassVar[RegionKind]
COLUMN_TYPE_UNSPECIFIED: ColumnType
COLUMN_TYPE_STRING: ColumnType
COLUMN_TYPE_NUMBER: ColumnType
COLUMN_TYPE_TIMESTAMP: ColumnType
REGION_KIND_UNSPECIFIED: RegionKind
DATA_GAP: RegionKind
LABEL_NOISE: RegionKind
MIXED: RegionKind

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "store", "compute", "index_shards", "max_budget", "max_batch_rows", "max_message_bytes", "strategies", "auth", "all_projects", "projects", "read_only", "job_retention_days", "run_retention_days", "index_device", "pool_retention_days", "ray_shard_gpus")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_FIELD_NUMBER: _ClassVar[int]
    INDEX_SHARDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    JOB_RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    RUN_RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    INDEX_DEVICE_FIELD_NUMBER: _ClassVar[int]
    POOL_RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    RAY_SHARD_GPUS_FIELD_NUMBER: _ClassVar[int]
    version: str
    store: str
    compute: str
    index_shards: int
    max_budget: int
    max_batch_rows: int
    max_message_bytes: int
    strategies: _containers.RepeatedScalarFieldContainer[str]
    auth: bool
    all_projects: bool
    projects: _containers.RepeatedScalarFieldContainer[str]
    read_only: bool
    job_retention_days: int
    run_retention_days: int
    index_device: str
    pool_retention_days: int
    ray_shard_gpus: float
    def __init__(self, version: _Optional[str] = ..., store: _Optional[str] = ..., compute: _Optional[str] = ..., index_shards: _Optional[int] = ..., max_budget: _Optional[int] = ..., max_batch_rows: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., strategies: _Optional[_Iterable[str]] = ..., auth: _Optional[bool] = ..., all_projects: _Optional[bool] = ..., projects: _Optional[_Iterable[str]] = ..., read_only: _Optional[bool] = ..., job_retention_days: _Optional[int] = ..., run_retention_days: _Optional[int] = ..., index_device: _Optional[str] = ..., pool_retention_days: _Optional[int] = ..., ray_shard_gpus: _Optional[float] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("name", "project", "model_name", "model_version", "dataset_name", "class_names", "embedding_dim", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    project: str
    model_name: str
    model_version: str
    dataset_name: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    embedding_dim: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., project: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., dataset_name: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., embedding_dim: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "name", "project", "model_name", "model_version", "dataset_name", "class_names", "embedding_dim", "num_rows", "created_at", "metadata_schema", "stored_bytes", "last_used_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project: str
    model_name: str
    model_version: str
    dataset_name: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    embedding_dim: int
    num_rows: int
    created_at: _timestamp_pb2.Timestamp
    metadata_schema: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    stored_bytes: int
    last_used_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., dataset_name: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., embedding_dim: _Optional[int] = ..., num_rows: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata_schema: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., stored_bytes: _Optional[int] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id", "force")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    force: bool
    def __init__(self, run_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeletePoolRequest(_message.Message):
    __slots__ = ("pool_id", "force")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    force: bool
    def __init__(self, pool_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("id", "rows", "diagnoses", "suggestion_sets", "labels", "files", "bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSES_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_SETS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    rows: int
    diagnoses: int
    suggestion_sets: int
    labels: int
    files: int
    bytes: int
    def __init__(self, id: _Optional[str] = ..., rows: _Optional[int] = ..., diagnoses: _Optional[int] = ..., suggestion_sets: _Optional[int] = ..., labels: _Optional[int] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("project", "page_size", "page_token")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project: str
    page_size: int
    page_token: str
    def __init__(self, project: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreatePoolRequest(_message.Message):
    __slots__ = ("name", "project", "embedding_dim", "num_classes", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    project: str
    embedding_dim: int
    num_classes: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., project: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., num_classes: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class Pool(_message.Message):
    __slots__ = ("id", "name", "project", "embedding_dim", "num_classes", "num_rows", "created_at", "metadata_schema", "index", "stored_bytes", "last_used_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project: str
    embedding_dim: int
    num_classes: int
    num_rows: int
    created_at: _timestamp_pb2.Timestamp
    metadata_schema: _containers.RepeatedCompositeFieldContainer[ColumnSchema]
    index: PoolIndexInfo
    stored_bytes: int
    last_used_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., num_classes: _Optional[int] = ..., num_rows: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata_schema: _Optional[_Iterable[_Union[ColumnSchema, _Mapping]]] = ..., index: _Optional[_Union[PoolIndexInfo, _Mapping]] = ..., stored_bytes: _Optional[int] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PoolIndexInfo(_message.Message):
    __slots__ = ("kind", "num_indexed", "description")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NUM_INDEXED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    num_indexed: int
    description: str
    def __init__(self, kind: _Optional[str] = ..., num_indexed: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class GetPoolRequest(_message.Message):
    __slots__ = ("pool_id",)
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    def __init__(self, pool_id: _Optional[str] = ...) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = ("project", "page_size", "page_token")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project: str
    page_size: int
    page_token: str
    def __init__(self, project: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoolsResponse(_message.Message):
    __slots__ = ("pools", "next_page_token")
    POOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[Pool]
    next_page_token: str
    def __init__(self, pools: _Optional[_Iterable[_Union[Pool, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ColumnSchema(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ColumnType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ColumnType, str]] = ...) -> None: ...

class StringValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class NumberValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class TimestampValues(_message.Message):
    __slots__ = ("unix_micros",)
    UNIX_MICROS_FIELD_NUMBER: _ClassVar[int]
    unix_micros: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, unix_micros: _Optional[_Iterable[int]] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "strings", "numbers", "timestamps", "is_null")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    name: str
    strings: StringValues
    numbers: NumberValues
    timestamps: TimestampValues
    is_null: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, name: _Optional[str] = ..., strings: _Optional[_Union[StringValues, _Mapping]] = ..., numbers: _Optional[_Union[NumberValues, _Mapping]] = ..., timestamps: _Optional[_Union[TimestampValues, _Mapping]] = ..., is_null: _Optional[_Iterable[bool]] = ...) -> None: ...

class IngestBatch(_message.Message):
    __slots__ = ("run_id", "pool_id", "batch_id", "sample_ids", "labels", "probabilities", "embeddings", "metadata", "uris", "probabilities_are_logits")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    URIS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_ARE_LOGITS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    pool_id: str
    batch_id: str
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[int]
    probabilities: bytes
    embeddings: bytes
    metadata: _containers.RepeatedCompositeFieldContainer[Column]
    uris: _containers.RepeatedScalarFieldContainer[str]
    probabilities_are_logits: bool
    def __init__(self, run_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., sample_ids: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[int]] = ..., probabilities: _Optional[bytes] = ..., embeddings: _Optional[bytes] = ..., metadata: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., uris: _Optional[_Iterable[str]] = ..., probabilities_are_logits: _Optional[bool] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("rows_received", "rows_stored", "batches_received", "batches_duplicate", "total_rows", "rows_already_stored")
    ROWS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ROWS_STORED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    ROWS_ALREADY_STORED_FIELD_NUMBER: _ClassVar[int]
    rows_received: int
    rows_stored: int
    batches_received: int
    batches_duplicate: int
    total_rows: int
    rows_already_stored: int
    def __init__(self, rows_received: _Optional[int] = ..., rows_stored: _Optional[int] = ..., batches_received: _Optional[int] = ..., batches_duplicate: _Optional[int] = ..., total_rows: _Optional[int] = ..., rows_already_stored: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "kind", "state", "fraction_done", "stage", "result_id", "error", "created_at", "updated_at", "run_id", "pool_id", "started_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Job.State]
        PENDING: _ClassVar[Job.State]
        RUNNING: _ClassVar[Job.State]
        SUCCEEDED: _ClassVar[Job.State]
        FAILED: _ClassVar[Job.State]
        CANCELLED: _ClassVar[Job.State]
    STATE_UNSPECIFIED: Job.State
    PENDING: Job.State
    RUNNING: Job.State
    SUCCEEDED: Job.State
    FAILED: Job.State
    CANCELLED: Job.State
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_DONE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    state: Job.State
    fraction_done: float
    stage: str
    result_id: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    run_id: str
    pool_id: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[Job.State, str]] = ..., fraction_done: _Optional[float] = ..., stage: _Optional[str] = ..., result_id: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "kind", "run_id", "project", "page_size", "page_token", "pool_id")
    STATES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[Job.State]
    kind: str
    run_id: str
    project: str
    page_size: int
    page_token: str
    pool_id: str
    def __init__(self, states: _Optional[_Iterable[_Union[Job.State, str]]] = ..., kind: _Optional[str] = ..., run_id: _Optional[str] = ..., project: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., pool_id: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DiagnoseRequest(_message.Message):
    __slots__ = ("run_id", "params", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    params: DiagnosisParams
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., params: _Optional[_Union[DiagnosisParams, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DiagnosisParams(_message.Message):
    __slots__ = ("failure_definition", "top_loss_quantile", "min_cluster_size", "min_samples", "reduce_to", "max_regions", "fdr_alpha", "max_slice_predicates", "min_slice_support", "sliceline_alpha", "top_slices", "quantile_bins", "seed")
    FAILURE_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    TOP_LOSS_QUANTILE_FIELD_NUMBER: _ClassVar[int]
    MIN_CLUSTER_SIZE_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REDUCE_TO_FIELD_NUMBER: _ClassVar[int]
    MAX_REGIONS_FIELD_NUMBER: _ClassVar[int]
    FDR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    MAX_SLICE_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    MIN_SLICE_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    SLICELINE_ALPHA_FIELD_NUMBER: _ClassVar[int]
    TOP_SLICES_FIELD_NUMBER: _ClassVar[int]
    QUANTILE_BINS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    failure_definition: str
    top_loss_quantile: float
    min_cluster_size: int
    min_samples: int
    reduce_to: int
    max_regions: int
    fdr_alpha: float
    max_slice_predicates: int
    min_slice_support: int
    sliceline_alpha: float
    top_slices: int
    quantile_bins: int
    seed: int
    def __init__(self, failure_definition: _Optional[str] = ..., top_loss_quantile: _Optional[float] = ..., min_cluster_size: _Optional[int] = ..., min_samples: _Optional[int] = ..., reduce_to: _Optional[int] = ..., max_regions: _Optional[int] = ..., fdr_alpha: _Optional[float] = ..., max_slice_predicates: _Optional[int] = ..., min_slice_support: _Optional[int] = ..., sliceline_alpha: _Optional[float] = ..., top_slices: _Optional[int] = ..., quantile_bins: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: float
    high: float
    def __init__(self, low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class Predicate(_message.Message):
    __slots__ = ("column", "op", "value", "low", "high", "text")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    column: str
    op: str
    value: str
    low: float
    high: float
    text: str
    def __init__(self, column: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[str] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class Slice(_message.Message):
    __slots__ = ("name", "predicates", "support", "failures", "error_rate", "error_rate_ci", "lift", "p_value", "q_value", "score", "precision", "recall", "f1")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICATES_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_CI_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    name: str
    predicates: _containers.RepeatedCompositeFieldContainer[Predicate]
    support: int
    failures: int
    error_rate: float
    error_rate_ci: Interval
    lift: float
    p_value: float
    q_value: float
    score: float
    precision: float
    recall: float
    f1: float
    def __init__(self, name: _Optional[str] = ..., predicates: _Optional[_Iterable[_Union[Predicate, _Mapping]]] = ..., support: _Optional[int] = ..., failures: _Optional[int] = ..., error_rate: _Optional[float] = ..., error_rate_ci: _Optional[_Union[Interval, _Mapping]] = ..., lift: _Optional[float] = ..., p_value: _Optional[float] = ..., q_value: _Optional[float] = ..., score: _Optional[float] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ...) -> None: ...

class Confusion(_message.Message):
    __slots__ = ("true_label", "predicted_label", "count", "true_name", "predicted_name")
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUE_NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_NAME_FIELD_NUMBER: _ClassVar[int]
    true_label: int
    predicted_label: int
    count: int
    true_name: str
    predicted_name: str
    def __init__(self, true_label: _Optional[int] = ..., predicted_label: _Optional[int] = ..., count: _Optional[int] = ..., true_name: _Optional[str] = ..., predicted_name: _Optional[str] = ...) -> None: ...

class Example(_message.Message):
    __slots__ = ("sample_id", "uri", "label", "predicted", "confidence", "failed")
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    uri: str
    label: int
    predicted: int
    confidence: float
    failed: bool
    def __init__(self, sample_id: _Optional[str] = ..., uri: _Optional[str] = ..., label: _Optional[int] = ..., predicted: _Optional[int] = ..., confidence: _Optional[float] = ..., failed: _Optional[bool] = ...) -> None: ...

class RegionEvidence(_message.Message):
    __slots__ = ("mean_failure_confidence", "neighbour_agreement_with_prediction", "neighbour_agreement_with_label", "relative_density", "summary", "failure_label_agreement", "failure_label_chance", "failure_neighbour_failures", "prediction_failure_rate")
    MEAN_FAILURE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOUR_AGREEMENT_WITH_PREDICTION_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOUR_AGREEMENT_WITH_LABEL_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_DENSITY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_LABEL_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_LABEL_CHANCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_NEIGHBOUR_FAILURES_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    mean_failure_confidence: float
    neighbour_agreement_with_prediction: float
    neighbour_agreement_with_label: float
    relative_density: float
    summary: str
    failure_label_agreement: float
    failure_label_chance: float
    failure_neighbour_failures: float
    prediction_failure_rate: float
    def __init__(self, mean_failure_confidence: _Optional[float] = ..., neighbour_agreement_with_prediction: _Optional[float] = ..., neighbour_agreement_with_label: _Optional[float] = ..., relative_density: _Optional[float] = ..., summary: _Optional[str] = ..., failure_label_agreement: _Optional[float] = ..., failure_label_chance: _Optional[float] = ..., failure_neighbour_failures: _Optional[float] = ..., prediction_failure_rate: _Optional[float] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("id", "support", "failures", "error_rate", "error_rate_ci", "lift", "excess_errors", "p_value", "q_value", "explanations", "confusions", "typical_failures", "mean_failure_confidence", "kind", "evidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_CI_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    EXCESS_ERRORS_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFUSIONS_FIELD_NUMBER: _ClassVar[int]
    TYPICAL_FAILURES_FIELD_NUMBER: _ClassVar[int]
    MEAN_FAILURE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: int
    support: int
    failures: int
    error_rate: float
    error_rate_ci: Interval
    lift: float
    excess_errors: float
    p_value: float
    q_value: float
    explanations: _containers.RepeatedCompositeFieldContainer[Slice]
    confusions: _containers.RepeatedCompositeFieldContainer[Confusion]
    typical_failures: _containers.RepeatedCompositeFieldContainer[Example]
    mean_failure_confidence: float
    kind: RegionKind
    evidence: RegionEvidence
    def __init__(self, id: _Optional[int] = ..., support: _Optional[int] = ..., failures: _Optional[int] = ..., error_rate: _Optional[float] = ..., error_rate_ci: _Optional[_Union[Interval, _Mapping]] = ..., lift: _Optional[float] = ..., excess_errors: _Optional[float] = ..., p_value: _Optional[float] = ..., q_value: _Optional[float] = ..., explanations: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., confusions: _Optional[_Iterable[_Union[Confusion, _Mapping]]] = ..., typical_failures: _Optional[_Iterable[_Union[Example, _Mapping]]] = ..., mean_failure_confidence: _Optional[float] = ..., kind: _Optional[_Union[RegionKind, str]] = ..., evidence: _Optional[_Union[RegionEvidence, _Mapping]] = ...) -> None: ...

class Diagnosis(_message.Message):
    __slots__ = ("id", "run_id", "created_at", "num_samples", "num_failures", "baseline_error_rate", "baseline_ci", "regions", "slices", "num_hypotheses_tested", "fdr_alpha", "params", "num_regions_tested", "job_id", "tracked_slices", "unheld_confusions", "previous_version", "classes")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NUM_FAILURES_FIELD_NUMBER: _ClassVar[int]
    BASELINE_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_CI_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    NUM_HYPOTHESES_TESTED_FIELD_NUMBER: _ClassVar[int]
    FDR_ALPHA_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    NUM_REGIONS_TESTED_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKED_SLICES_FIELD_NUMBER: _ClassVar[int]
    UNHELD_CONFUSIONS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    created_at: _timestamp_pb2.Timestamp
    num_samples: int
    num_failures: int
    baseline_error_rate: float
    baseline_ci: Interval
    regions: _containers.RepeatedCompositeFieldContainer[Region]
    slices: _containers.RepeatedCompositeFieldContainer[Slice]
    num_hypotheses_tested: int
    fdr_alpha: float
    params: DiagnosisParams
    num_regions_tested: int
    job_id: str
    tracked_slices: _containers.RepeatedCompositeFieldContainer[Slice]
    unheld_confusions: _containers.RepeatedCompositeFieldContainer[UnheldConfusion]
    previous_version: RunComparison
    classes: _containers.RepeatedCompositeFieldContainer[ClassStat]
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., num_samples: _Optional[int] = ..., num_failures: _Optional[int] = ..., baseline_error_rate: _Optional[float] = ..., baseline_ci: _Optional[_Union[Interval, _Mapping]] = ..., regions: _Optional[_Iterable[_Union[Region, _Mapping]]] = ..., slices: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., num_hypotheses_tested: _Optional[int] = ..., fdr_alpha: _Optional[float] = ..., params: _Optional[_Union[DiagnosisParams, _Mapping]] = ..., num_regions_tested: _Optional[int] = ..., job_id: _Optional[str] = ..., tracked_slices: _Optional[_Iterable[_Union[Slice, _Mapping]]] = ..., unheld_confusions: _Optional[_Iterable[_Union[UnheldConfusion, _Mapping]]] = ..., previous_version: _Optional[_Union[RunComparison, _Mapping]] = ..., classes: _Optional[_Iterable[_Union[ClassStat, _Mapping]]] = ...) -> None: ...

class ClassStat(_message.Message):
    __slots__ = ("label", "name", "support", "failures", "error_rate", "error_rate_ci", "lift", "excess_errors", "p_value", "q_value", "predicted", "precision", "recall", "f1", "top_confusion", "top_confusion_name", "top_confusion_count")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_CI_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    EXCESS_ERRORS_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    TOP_CONFUSION_FIELD_NUMBER: _ClassVar[int]
    TOP_CONFUSION_NAME_FIELD_NUMBER: _ClassVar[int]
    TOP_CONFUSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    label: int
    name: str
    support: int
    failures: int
    error_rate: float
    error_rate_ci: Interval
    lift: float
    excess_errors: float
    p_value: float
    q_value: float
    predicted: int
    precision: float
    recall: float
    f1: float
    top_confusion: int
    top_confusion_name: str
    top_confusion_count: int
    def __init__(self, label: _Optional[int] = ..., name: _Optional[str] = ..., support: _Optional[int] = ..., failures: _Optional[int] = ..., error_rate: _Optional[float] = ..., error_rate_ci: _Optional[_Union[Interval, _Mapping]] = ..., lift: _Optional[float] = ..., excess_errors: _Optional[float] = ..., p_value: _Optional[float] = ..., q_value: _Optional[float] = ..., predicted: _Optional[int] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., top_confusion: _Optional[int] = ..., top_confusion_name: _Optional[str] = ..., top_confusion_count: _Optional[int] = ...) -> None: ...

class UnheldConfusion(_message.Message):
    __slots__ = ("true_label", "predicted_label", "failures", "excess_errors", "true_name", "predicted_name")
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    EXCESS_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TRUE_NAME_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_NAME_FIELD_NUMBER: _ClassVar[int]
    true_label: int
    predicted_label: int
    failures: int
    excess_errors: float
    true_name: str
    predicted_name: str
    def __init__(self, true_label: _Optional[int] = ..., predicted_label: _Optional[int] = ..., failures: _Optional[int] = ..., excess_errors: _Optional[float] = ..., true_name: _Optional[str] = ..., predicted_name: _Optional[str] = ...) -> None: ...

class GetDiagnosisRequest(_message.Message):
    __slots__ = ("diagnosis_id", "run_id")
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    diagnosis_id: str
    run_id: str
    def __init__(self, diagnosis_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListDiagnosesRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListDiagnosesResponse(_message.Message):
    __slots__ = ("diagnoses",)
    DIAGNOSES_FIELD_NUMBER: _ClassVar[int]
    diagnoses: _containers.RepeatedCompositeFieldContainer[Diagnosis]
    def __init__(self, diagnoses: _Optional[_Iterable[_Union[Diagnosis, _Mapping]]] = ...) -> None: ...

class MetadataFilter(_message.Message):
    __slots__ = ("column", "op", "values", "number")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    column: str
    op: str
    values: _containers.RepeatedScalarFieldContainer[str]
    number: float
    def __init__(self, column: _Optional[str] = ..., op: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., number: _Optional[float] = ...) -> None: ...

class SuggestRequest(_message.Message):
    __slots__ = ("run_id", "diagnosis_id", "pool_id", "budget", "strategy", "exclude_ids", "allow_repeats", "filters", "seed", "name", "uncertainty_weight", "slice_weight", "region_ids", "query_ids", "request_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_REPEATS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SLICE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    REGION_IDS_FIELD_NUMBER: _ClassVar[int]
    QUERY_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    diagnosis_id: str
    pool_id: str
    budget: int
    strategy: str
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    allow_repeats: bool
    filters: _containers.RepeatedCompositeFieldContainer[MetadataFilter]
    seed: int
    name: str
    uncertainty_weight: float
    slice_weight: float
    region_ids: _containers.RepeatedScalarFieldContainer[int]
    query_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, run_id: _Optional[str] = ..., diagnosis_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., budget: _Optional[int] = ..., strategy: _Optional[str] = ..., exclude_ids: _Optional[_Iterable[str]] = ..., allow_repeats: _Optional[bool] = ..., filters: _Optional[_Iterable[_Union[MetadataFilter, _Mapping]]] = ..., seed: _Optional[int] = ..., name: _Optional[str] = ..., uncertainty_weight: _Optional[float] = ..., slice_weight: _Optional[float] = ..., region_ids: _Optional[_Iterable[int]] = ..., query_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("rank", "sample_id", "uri", "score", "region_id", "reason", "nearest_failure_id", "distance", "slice", "predicted_label", "confidence")
    RANK_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NEAREST_FAILURE_ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SLICE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    sample_id: str
    uri: str
    score: float
    region_id: int
    reason: str
    nearest_failure_id: str
    distance: float
    slice: str
    predicted_label: int
    confidence: float
    def __init__(self, rank: _Optional[int] = ..., sample_id: _Optional[str] = ..., uri: _Optional[str] = ..., score: _Optional[float] = ..., region_id: _Optional[int] = ..., reason: _Optional[str] = ..., nearest_failure_id: _Optional[str] = ..., distance: _Optional[float] = ..., slice: _Optional[str] = ..., predicted_label: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("fraction_done", "stage")
    FRACTION_DONE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    fraction_done: float
    stage: str
    def __init__(self, fraction_done: _Optional[float] = ..., stage: _Optional[str] = ...) -> None: ...

class SuggestionSet(_message.Message):
    __slots__ = ("id", "run_id", "pool_id", "diagnosis_id", "strategy", "budget", "num_candidates", "created_at", "name", "exclusions", "note", "pool_coverage", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    NUM_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    POOL_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    pool_id: str
    diagnosis_id: str
    strategy: str
    budget: int
    num_candidates: int
    created_at: _timestamp_pb2.Timestamp
    name: str
    exclusions: SuggestionExclusions
    note: str
    pool_coverage: _containers.RepeatedCompositeFieldContainer[RegionCoverage]
    request_id: str
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., diagnosis_id: _Optional[str] = ..., strategy: _Optional[str] = ..., budget: _Optional[int] = ..., num_candidates: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., exclusions: _Optional[_Union[SuggestionExclusions, _Mapping]] = ..., note: _Optional[str] = ..., pool_coverage: _Optional[_Iterable[_Union[RegionCoverage, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegionCoverage(_message.Message):
    __slots__ = ("region_id", "failures", "covered", "reach", "median_distance", "distance_ratio")
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    REACH_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_RATIO_FIELD_NUMBER: _ClassVar[int]
    region_id: int
    failures: int
    covered: float
    reach: float
    median_distance: float
    distance_ratio: float
    def __init__(self, region_id: _Optional[int] = ..., failures: _Optional[int] = ..., covered: _Optional[float] = ..., reach: _Optional[float] = ..., median_distance: _Optional[float] = ..., distance_ratio: _Optional[float] = ...) -> None: ...

class SuggestionExclusions(_message.Message):
    __slots__ = ("pool_rows", "run_ids", "given_ids", "earlier_picks", "filtered_out", "eligible", "labeled")
    POOL_ROWS_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    GIVEN_IDS_FIELD_NUMBER: _ClassVar[int]
    EARLIER_PICKS_FIELD_NUMBER: _ClassVar[int]
    FILTERED_OUT_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    LABELED_FIELD_NUMBER: _ClassVar[int]
    pool_rows: int
    run_ids: int
    given_ids: int
    earlier_picks: int
    filtered_out: int
    eligible: int
    labeled: int
    def __init__(self, pool_rows: _Optional[int] = ..., run_ids: _Optional[int] = ..., given_ids: _Optional[int] = ..., earlier_picks: _Optional[int] = ..., filtered_out: _Optional[int] = ..., eligible: _Optional[int] = ..., labeled: _Optional[int] = ...) -> None: ...

class SuggestResponse(_message.Message):
    __slots__ = ("progress", "candidates", "done")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    candidates: CandidateBatch
    done: SuggestionSet
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., candidates: _Optional[_Union[CandidateBatch, _Mapping]] = ..., done: _Optional[_Union[SuggestionSet, _Mapping]] = ...) -> None: ...

class CandidateBatch(_message.Message):
    __slots__ = ("candidates",)
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ...) -> None: ...

class ListSuggestionSetsRequest(_message.Message):
    __slots__ = ("run_id", "pool_id", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    pool_id: str
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., pool_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSuggestionSetsResponse(_message.Message):
    __slots__ = ("suggestion_sets", "next_page_token")
    SUGGESTION_SETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    suggestion_sets: _containers.RepeatedCompositeFieldContainer[SuggestionSet]
    next_page_token: str
    def __init__(self, suggestion_sets: _Optional[_Iterable[_Union[SuggestionSet, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetSuggestionSetRequest(_message.Message):
    __slots__ = ("suggestion_set_id", "page_size", "page_token")
    SUGGESTION_SET_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    suggestion_set_id: str
    page_size: int
    page_token: str
    def __init__(self, suggestion_set_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class DeleteSuggestionSetRequest(_message.Message):
    __slots__ = ("suggestion_set_id",)
    SUGGESTION_SET_ID_FIELD_NUMBER: _ClassVar[int]
    suggestion_set_id: str
    def __init__(self, suggestion_set_id: _Optional[str] = ...) -> None: ...

class SuggestionSetPage(_message.Message):
    __slots__ = ("suggestion_set", "candidates", "next_page_token")
    SUGGESTION_SET_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    suggestion_set: SuggestionSet
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    next_page_token: str
    def __init__(self, suggestion_set: _Optional[_Union[SuggestionSet, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRunMapRequest(_message.Message):
    __slots__ = ("run_id", "diagnosis_id", "max_points", "seed", "projection")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROJECTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    diagnosis_id: str
    max_points: int
    seed: int
    projection: str
    def __init__(self, run_id: _Optional[str] = ..., diagnosis_id: _Optional[str] = ..., max_points: _Optional[int] = ..., seed: _Optional[int] = ..., projection: _Optional[str] = ...) -> None: ...

class RunMap(_message.Message):
    __slots__ = ("run_id", "diagnosis_id", "num_samples", "coordinates", "sample_ids", "uris", "failed", "region_ids", "labels", "predicted", "explained_variance", "num_not_diagnosed", "projection")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    COORDINATES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    URIS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    REGION_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    EXPLAINED_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    NUM_NOT_DIAGNOSED_FIELD_NUMBER: _ClassVar[int]
    PROJECTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    diagnosis_id: str
    num_samples: int
    coordinates: bytes
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    uris: _containers.RepeatedScalarFieldContainer[str]
    failed: _containers.RepeatedScalarFieldContainer[bool]
    region_ids: _containers.RepeatedScalarFieldContainer[int]
    labels: _containers.RepeatedScalarFieldContainer[int]
    predicted: _containers.RepeatedScalarFieldContainer[int]
    explained_variance: float
    num_not_diagnosed: int
    projection: str
    def __init__(self, run_id: _Optional[str] = ..., diagnosis_id: _Optional[str] = ..., num_samples: _Optional[int] = ..., coordinates: _Optional[bytes] = ..., sample_ids: _Optional[_Iterable[str]] = ..., uris: _Optional[_Iterable[str]] = ..., failed: _Optional[_Iterable[bool]] = ..., region_ids: _Optional[_Iterable[int]] = ..., labels: _Optional[_Iterable[int]] = ..., predicted: _Optional[_Iterable[int]] = ..., explained_variance: _Optional[float] = ..., num_not_diagnosed: _Optional[int] = ..., projection: _Optional[str] = ...) -> None: ...

class ListRegionMembersRequest(_message.Message):
    __slots__ = ("diagnosis_id", "region_id", "page_size", "page_token")
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    diagnosis_id: str
    region_id: int
    page_size: int
    page_token: str
    def __init__(self, diagnosis_id: _Optional[str] = ..., region_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRegionMembersResponse(_message.Message):
    __slots__ = ("diagnosis_id", "region_id", "total_size", "next_page_token", "row_indices", "sample_ids", "uris", "labels", "predicted", "confidence", "failed", "metadata", "num_rows_diagnosed", "num_rows_in_run")
    DIAGNOSIS_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROW_INDICES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    URIS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_DIAGNOSED_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_IN_RUN_FIELD_NUMBER: _ClassVar[int]
    diagnosis_id: str
    region_id: int
    total_size: int
    next_page_token: str
    row_indices: _containers.RepeatedScalarFieldContainer[int]
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    uris: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[int]
    predicted: _containers.RepeatedScalarFieldContainer[int]
    confidence: _containers.RepeatedScalarFieldContainer[float]
    failed: _containers.RepeatedScalarFieldContainer[bool]
    metadata: _containers.RepeatedCompositeFieldContainer[Column]
    num_rows_diagnosed: int
    num_rows_in_run: int
    def __init__(self, diagnosis_id: _Optional[str] = ..., region_id: _Optional[int] = ..., total_size: _Optional[int] = ..., next_page_token: _Optional[str] = ..., row_indices: _Optional[_Iterable[int]] = ..., sample_ids: _Optional[_Iterable[str]] = ..., uris: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[int]] = ..., predicted: _Optional[_Iterable[int]] = ..., confidence: _Optional[_Iterable[float]] = ..., failed: _Optional[_Iterable[bool]] = ..., metadata: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., num_rows_diagnosed: _Optional[int] = ..., num_rows_in_run: _Optional[int] = ...) -> None: ...

class ImportLabelsRequest(_message.Message):
    __slots__ = ("pool_id", "run_id", "sample_ids", "labels", "source")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    run_id: str
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    source: str
    def __init__(self, pool_id: _Optional[str] = ..., run_id: _Optional[str] = ..., sample_ids: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ...) -> None: ...

class ImportLabelsResponse(_message.Message):
    __slots__ = ("labels_stored", "labels_replaced", "total_labeled")
    LABELS_STORED_FIELD_NUMBER: _ClassVar[int]
    LABELS_REPLACED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LABELED_FIELD_NUMBER: _ClassVar[int]
    labels_stored: int
    labels_replaced: int
    total_labeled: int
    def __init__(self, labels_stored: _Optional[int] = ..., labels_replaced: _Optional[int] = ..., total_labeled: _Optional[int] = ...) -> None: ...

class ListLabelsRequest(_message.Message):
    __slots__ = ("pool_id", "run_id")
    POOL_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    pool_id: str
    run_id: str
    def __init__(self, pool_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class LabelSet(_message.Message):
    __slots__ = ("sample_ids", "uris", "labels", "sources", "labeled_at")
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    URIS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LABELED_AT_FIELD_NUMBER: _ClassVar[int]
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    uris: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    sources: _containers.RepeatedScalarFieldContainer[str]
    labeled_at: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, sample_ids: _Optional[_Iterable[str]] = ..., uris: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., sources: _Optional[_Iterable[str]] = ..., labeled_at: _Optional[_Iterable[float]] = ...) -> None: ...

class CompareRunsRequest(_message.Message):
    __slots__ = ("run_id_a", "run_id_b", "diagnosis_id_a", "diagnosis_id_b", "min_overlap", "alpha")
    RUN_ID_A_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_B_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_A_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_B_FIELD_NUMBER: _ClassVar[int]
    MIN_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    run_id_a: str
    run_id_b: str
    diagnosis_id_a: str
    diagnosis_id_b: str
    min_overlap: float
    alpha: float
    def __init__(self, run_id_a: _Optional[str] = ..., run_id_b: _Optional[str] = ..., diagnosis_id_a: _Optional[str] = ..., diagnosis_id_b: _Optional[str] = ..., min_overlap: _Optional[float] = ..., alpha: _Optional[float] = ...) -> None: ...

class RateChange(_message.Message):
    __slots__ = ("support", "failures_a", "failures_b", "error_rate_a", "error_rate_a_ci", "error_rate_b", "error_rate_b_ci", "difference", "difference_ci", "p_value")
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_A_FIELD_NUMBER: _ClassVar[int]
    FAILURES_B_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_A_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_A_CI_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_B_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_B_CI_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_CI_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    support: int
    failures_a: int
    failures_b: int
    error_rate_a: float
    error_rate_a_ci: Interval
    error_rate_b: float
    error_rate_b_ci: Interval
    difference: float
    difference_ci: Interval
    p_value: float
    def __init__(self, support: _Optional[int] = ..., failures_a: _Optional[int] = ..., failures_b: _Optional[int] = ..., error_rate_a: _Optional[float] = ..., error_rate_a_ci: _Optional[_Union[Interval, _Mapping]] = ..., error_rate_b: _Optional[float] = ..., error_rate_b_ci: _Optional[_Union[Interval, _Mapping]] = ..., difference: _Optional[float] = ..., difference_ci: _Optional[_Union[Interval, _Mapping]] = ..., p_value: _Optional[float] = ...) -> None: ...

class RegionComparison(_message.Message):
    __slots__ = ("status", "region_a", "region_b", "jaccard", "rows", "slice_a", "slice_b", "kind_a", "kind_b", "q_value")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REGION_A_FIELD_NUMBER: _ClassVar[int]
    REGION_B_FIELD_NUMBER: _ClassVar[int]
    JACCARD_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SLICE_A_FIELD_NUMBER: _ClassVar[int]
    SLICE_B_FIELD_NUMBER: _ClassVar[int]
    KIND_A_FIELD_NUMBER: _ClassVar[int]
    KIND_B_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    status: str
    region_a: int
    region_b: int
    jaccard: float
    rows: RateChange
    slice_a: str
    slice_b: str
    kind_a: RegionKind
    kind_b: RegionKind
    q_value: float
    def __init__(self, status: _Optional[str] = ..., region_a: _Optional[int] = ..., region_b: _Optional[int] = ..., jaccard: _Optional[float] = ..., rows: _Optional[_Union[RateChange, _Mapping]] = ..., slice_a: _Optional[str] = ..., slice_b: _Optional[str] = ..., kind_a: _Optional[_Union[RegionKind, str]] = ..., kind_b: _Optional[_Union[RegionKind, str]] = ..., q_value: _Optional[float] = ...) -> None: ...

class SliceComparison(_message.Message):
    __slots__ = ("name", "rows", "q_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    Q_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    rows: RateChange
    q_value: float
    def __init__(self, name: _Optional[str] = ..., rows: _Optional[_Union[RateChange, _Mapping]] = ..., q_value: _Optional[float] = ...) -> None: ...

class RunComparison(_message.Message):
    __slots__ = ("run_id_a", "run_id_b", "diagnosis_id_a", "diagnosis_id_b", "num_shared", "num_only_a", "num_only_b", "overall", "regions", "slices", "min_overlap", "alpha", "model_version_a", "model_version_b", "classes")
    RUN_ID_A_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_B_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_A_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSIS_ID_B_FIELD_NUMBER: _ClassVar[int]
    NUM_SHARED_FIELD_NUMBER: _ClassVar[int]
    NUM_ONLY_A_FIELD_NUMBER: _ClassVar[int]
    NUM_ONLY_B_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    MIN_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_B_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    run_id_a: str
    run_id_b: str
    diagnosis_id_a: str
    diagnosis_id_b: str
    num_shared: int
    num_only_a: int
    num_only_b: int
    overall: RateChange
    regions: _containers.RepeatedCompositeFieldContainer[RegionComparison]
    slices: _containers.RepeatedCompositeFieldContainer[SliceComparison]
    min_overlap: float
    alpha: float
    model_version_a: str
    model_version_b: str
    classes: _containers.RepeatedCompositeFieldContainer[SliceComparison]
    def __init__(self, run_id_a: _Optional[str] = ..., run_id_b: _Optional[str] = ..., diagnosis_id_a: _Optional[str] = ..., diagnosis_id_b: _Optional[str] = ..., num_shared: _Optional[int] = ..., num_only_a: _Optional[int] = ..., num_only_b: _Optional[int] = ..., overall: _Optional[_Union[RateChange, _Mapping]] = ..., regions: _Optional[_Iterable[_Union[RegionComparison, _Mapping]]] = ..., slices: _Optional[_Iterable[_Union[SliceComparison, _Mapping]]] = ..., min_overlap: _Optional[float] = ..., alpha: _Optional[float] = ..., model_version_a: _Optional[str] = ..., model_version_b: _Optional[str] = ..., classes: _Optional[_Iterable[_Union[SliceComparison, _Mapping]]] = ...) -> None: ...
