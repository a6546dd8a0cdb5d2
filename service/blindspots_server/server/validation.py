"""Boundary checks: turn API messages into validated arrays or raise
:class:`InvalidArgument` naming the offending field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb

from ..storage.base import MAX_METADATA_COLUMNS
from ..storage.rows import build_table

_KIND_OF = {"strings": "string", "numbers": "number", "timestamps": "timestamp"}
MAX_NAME_LEN = 256
MAX_SAMPLE_ID_LEN = 1024
MAX_URI_LEN = 4096
MAX_SEED = (1 << 32) - 1       # numpy and scikit-learn both take seeds in [0, 2**32)


class InvalidArgument(ValueError):
    """A request field is malformed; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class TargetShape:
    """What a run or pool accepts."""

    kind: str                 # "run" | "pool"
    embedding_dim: int
    num_classes: int          # 0: pool without probabilities
    max_rows: int


@dataclass
class ValidBatch:
    batch_id: str
    table: pa.Table
    schema: dict[str, str]
    rows: int
    nbytes: int


def require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise InvalidArgument(field, message)


def check_name(value: str, field: str, required: bool = True) -> None:
    require(bool(value) or not required, field, "is required")
    require(len(value) <= MAX_NAME_LEN, field, f"is longer than {MAX_NAME_LEN} characters")


def check_diagnosis_params(p: pb.DiagnosisParams, num_rows: int, embedding_dim: int) -> None:
    """Every DiagnosisParams field checked before the job starts: a value the diagnosis
    would fail on later is INVALID_ARGUMENT naming it now."""
    require(p.failure_definition in ("", "mispredicted", "top_loss"), "params.failure_definition",
            "must be 'mispredicted' or 'top_loss'")
    require(0 <= p.top_loss_quantile < 1, "params.top_loss_quantile", "must be in [0, 1)")
    require(0 <= p.fdr_alpha < 1, "params.fdr_alpha", "must be in [0, 1)")
    require(0 <= p.sliceline_alpha <= 1, "params.sliceline_alpha", "must be in [0, 1]")
    require(0 <= p.max_slice_predicates <= 3, "params.max_slice_predicates", "must be between 0 and 3")
    for name in ("min_cluster_size", "min_samples", "reduce_to", "max_regions", "min_slice_support",
                 "top_slices", "quantile_bins"):
        require(getattr(p, name) >= 0, f"params.{name}", "must not be negative")
    for name, limit in (("max_regions", 1000), ("top_slices", 1000), ("quantile_bins", 100),
                        ("min_cluster_size", num_rows), ("min_slice_support", num_rows)):
        require(getattr(p, name) <= max(limit, 1), f"params.{name}", f"must be at most {max(limit, 1)}")
    # HDBSCAN needs clusters of two or more; 0 means "scaled to the data".
    require(p.min_cluster_size != 1, "params.min_cluster_size", "must be 0 (automatic) or at least 2")
    require(p.reduce_to <= embedding_dim, "params.reduce_to", f"must not exceed the embedding_dim {embedding_dim}")
    require(0 <= p.seed <= MAX_SEED, "params.seed", f"must be between 0 and {MAX_SEED}")


def _matrix(raw: bytes, n: int, width: int, field: str, what: str) -> np.ndarray:
    expected = n * width * 4
    if len(raw) != expected:
        per_row = len(raw) / 4 / n if n else 0
        raise InvalidArgument(field, f"expected {n} x {width} float32 ({expected} bytes) to match the "
                                     f"{what}, got {len(raw)} bytes ({per_row:g} values per row)")
    m = np.frombuffer(raw, dtype="<f4").reshape(n, width)
    require(bool(np.isfinite(m).all()), field, "contains NaN or infinite values")
    return m


def _probabilities(msg: pb.IngestBatch, n: int, c: int) -> np.ndarray:
    p = _matrix(msg.probabilities, n, c, "probabilities", f"{c} classes")
    if msg.probabilities_are_logits:
        z = p - p.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    require(bool((p >= -1e-6).all()), "probabilities", "has negative values (set probabilities_are_logits "
                                                      "for raw scores)")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
    require(len(bad) == 0, "probabilities",
            f"row {bad[0] if len(bad) else 0} sums to {sums[bad[0]] if len(bad) else 0:.4f}, not 1 "
            "(set probabilities_are_logits for raw scores)")
    return p


def _metadata(columns, n: int) -> tuple[dict[str, tuple[str, pa.Array]], dict[str, str]]:
    require(len(columns) <= MAX_METADATA_COLUMNS, "metadata",
            f"has {len(columns)} columns; the limit is {MAX_METADATA_COLUMNS} per run or pool")
    out: dict[str, tuple[str, pa.Array]] = {}
    for i, col in enumerate(columns):
        field = f"metadata[{i}]"
        check_name(col.name, field + ".name")
        require(col.name not in out, field + ".name", f"column {col.name!r} appears twice")
        which = col.WhichOneof("values")
        require(which is not None, field, f"column {col.name!r} has no values")
        kind = _KIND_OF[which]
        if which == "strings":
            values = list(col.strings.values)
        elif which == "numbers":
            values = np.asarray(col.numbers.values, dtype=np.float64)
        else:
            values = np.asarray(col.timestamps.unix_micros, dtype=np.int64)
        require(len(values) == n, field, f"column {col.name!r} has {len(values)} values for {n} rows")
        nulls = np.asarray(col.is_null, dtype=bool)
        require(len(nulls) in (0, n), field + ".is_null", f"has {len(nulls)} entries for {n} rows")
        mask = nulls if len(nulls) else None
        if which == "strings":
            arr = pa.array(values, pa.string(), mask=mask)
        elif which == "numbers":
            require(not np.isinf(values).any(), field, f"column {col.name!r} has infinite values")
            arr = pa.array(values, pa.float64(), mask=(mask if mask is not None else np.isnan(values)))
        else:
            arr = pa.array(values, pa.int64(), mask=mask).cast(pa.timestamp("us"))
        out[col.name] = (kind, arr)
    return out, {name: kind for name, (kind, _) in out.items()}


def validate_batch(msg: pb.IngestBatch, shape: TargetShape) -> ValidBatch:
    """Check one ingest message against its target; build the canonical table."""
    check_name(msg.batch_id, "batch_id")
    n = len(msg.sample_ids)
    require(n > 0, "sample_ids", "is empty: a batch needs at least one row")
    require(n <= shape.max_rows, "sample_ids", f"has {n} rows; the limit per batch is {shape.max_rows}")
    ids = list(msg.sample_ids)
    require(all(ids), "sample_ids", "contains an empty id")
    require(max(map(len, ids)) <= MAX_SAMPLE_ID_LEN, "sample_ids",
            f"contains an id longer than {MAX_SAMPLE_ID_LEN} characters")
    if len(set(ids)) != n:
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise InvalidArgument("sample_ids", f"id {dup!r} appears more than once in the batch")
    emb = _matrix(msg.embeddings, n, shape.embedding_dim, "embeddings",
                  f"{shape.kind}'s embedding_dim {shape.embedding_dim}")

    labels: Optional[np.ndarray] = None
    probs: Optional[np.ndarray] = None
    if shape.kind == "run":
        require(len(msg.labels) == n, "labels", f"has {len(msg.labels)} values for {n} rows")
        labels = np.asarray(msg.labels, dtype=np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= shape.num_classes))
        require(len(bad) == 0, "labels", f"value {labels[bad[0]] if len(bad) else 0} at row "
                                         f"{bad[0] if len(bad) else 0} is outside [0, {shape.num_classes})")
        probs = _probabilities(msg, n, shape.num_classes)
    elif msg.probabilities:
        require(shape.num_classes > 0, "probabilities",
                "given, but the pool was created with num_classes=0")
        probs = _probabilities(msg, n, shape.num_classes)
    else:
        # Every row of a pool has probabilities or none does: strategies read them as one matrix.
        require(shape.num_classes == 0, "probabilities",
                f"is required: the pool was created with num_classes={shape.num_classes}")

    uris = list(msg.uris)
    require(len(uris) in (0, n), "uris", f"has {len(uris)} values for {n} rows")
    require(not uris or max(map(len, uris)) <= MAX_URI_LEN, "uris",
            f"contains a uri longer than {MAX_URI_LEN} characters")
    meta, schema = _metadata(msg.metadata, n)
    table = build_table(ids, emb, labels, probs, uris, meta)
    return ValidBatch(batch_id=msg.batch_id, table=table, schema=schema, rows=n, nbytes=msg.ByteSize())
