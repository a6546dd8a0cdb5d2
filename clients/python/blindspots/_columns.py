"""Pack numpy arrays and pandas metadata into API batches."""
from __future__ import annotations

import hashlib
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from .v1 import blindspots_pb2 as pb


# Tensor float types numpy holds; others (bfloat16, the float8 types of mixed precision) are widened.
_NUMPY_FLOATS = ("torch.float16", "torch.float32", "torch.float64")


def as_array(values) -> np.ndarray:
    """A numpy view of array-likes, tensors included (a torch tensor that needs grad, or lives on
    a GPU, is detached and copied to host memory first; a bfloat16 or float8 one, which numpy has
    no type for, becomes float32)."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
        if values.is_floating_point() and str(values.dtype) not in _NUMPY_FLOATS:
            values = values.float()
    return np.asarray(values)


def as_matrix(values, name: str, rows: int) -> np.ndarray:
    m = as_array(values)
    if m.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x columns), got shape {m.shape}")
    if m.shape[0] != rows:
        raise ValueError(f"{name} has {m.shape[0]} rows but sample_ids has {rows}")
    return np.ascontiguousarray(m, dtype="<f4")


# Twice the unit roundoff of the low-precision float types of mixed precision: rounding each value
# moves a row of probabilities' sum by at most the unit roundoff, which widening keeps.
_ROUNDOFF = {"torch.bfloat16": 2.0 ** -7, "torch.float16": 2.0 ** -10, "float16": 2.0 ** -10,
             "torch.float8_e4m3fn": 2.0 ** -3, "torch.float8_e4m3fnuz": 2.0 ** -3,
             "torch.float8_e5m2": 2.0 ** -2, "torch.float8_e5m2fnuz": 2.0 ** -2}


def as_probabilities(values, rows: int) -> np.ndarray:
    """``probabilities`` as float32. Given in a low-precision float type (bfloat16, float16 or
    float8: a softmax under autocast), rows whose sums only that type's rounding moves off 1 are
    scaled back to sum to 1, which the server asks of probabilities; other rows stay as given."""
    m = as_matrix(values, "probabilities", rows)
    roundoff = _ROUNDOFF.get(str(getattr(values, "dtype", "")))
    if roundoff is not None and len(m):
        sums = m.sum(axis=1, dtype=np.float64)
        near = (np.abs(sums - 1.0) <= roundoff) & (sums > 0)
        m[near] = (m[near] / sums[near, None]).astype(np.float32)
    return m


def as_frame(metadata, rows: int) -> Optional[pd.DataFrame]:
    """Metadata as a DataFrame with a 0..n-1 index: a DataFrame, a mapping of column name to
    values, or a table with ``to_pandas()`` (pyarrow, polars); anything else is a TypeError."""
    if metadata is None or (isinstance(metadata, Mapping) and not metadata):
        return None
    if isinstance(metadata, pd.Series):
        metadata = metadata.to_frame()
    elif not isinstance(metadata, pd.DataFrame) and hasattr(metadata, "to_pandas"):
        metadata = metadata.to_pandas()
    elif isinstance(metadata, Mapping):
        for name, values in metadata.items():
            got = len(values) if hasattr(values, "__len__") and not isinstance(values, (str, bytes)) else None
            if got != rows:
                raise ValueError(f"metadata column {str(name)!r} has {'a single value' if got is None else f'{got} values'} "
                                 f"but sample_ids has {rows} rows: give one value per sample")
        metadata = pd.DataFrame(dict(metadata))
    if not isinstance(metadata, pd.DataFrame):
        raise TypeError(f"metadata must be a pandas DataFrame, a mapping of column name to values, or a table "
                        f"with to_pandas(); got {type(metadata).__name__}")
    if len(metadata) != rows:
        raise ValueError(f"metadata has {len(metadata)} rows but sample_ids has {rows}")
    return metadata.reset_index(drop=True)


def metadata_columns(frame: Optional[pd.DataFrame], start: int, stop: int) -> list[pb.Column]:
    if frame is None:
        return []
    cols = []
    part = frame.iloc[start:stop]
    for name in frame.columns:
        series = part[name]
        col = pb.Column(name=str(name))
        null = series.isna().to_numpy()
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            s = series
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            micros = s.astype("datetime64[us]").to_numpy().astype("int64")
            micros[null] = 0
            col.timestamps.unix_micros.extend(micros.tolist())
            if null.any():
                col.is_null.extend(null.tolist())
        elif pd.api.types.is_timedelta64_dtype(series.dtype):       # durations: seconds
            col.numbers.values.extend(series.dt.total_seconds().astype("float64").to_numpy().tolist())
        elif pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
            col.numbers.values.extend(series.astype("float64").to_numpy().tolist())
        else:
            col.strings.values.extend(["" if n else str(v) for v, n in zip(series.tolist(), null)])
            if null.any():
                col.is_null.extend(null.tolist())
        cols.append(col)
    return cols


def batch_id_for(prefix: str, ids: Sequence[str]) -> str:
    """Deterministic id from the batch's sample ids: re-sending the same rows
    (a retry, or a pipeline step that runs again) is recognised as a duplicate."""
    h = hashlib.sha1()
    for sid in ids:
        h.update(sid.encode())
        h.update(b"\0")
    return f"{prefix}{h.hexdigest()[:24]}"


def iter_batches(target_field: str, target_id: str, sample_ids: Sequence[str], embeddings: np.ndarray,
                 labels: Optional[np.ndarray], probabilities: Optional[np.ndarray],
                 metadata: Optional[pd.DataFrame], uris: Optional[Sequence[str]], batch_size: int,
                 logits: bool, batch_id_prefix: str) -> Iterator[pb.IngestBatch]:
    n = len(sample_ids)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        ids = [str(s) for s in sample_ids[start:stop]]
        msg = pb.IngestBatch(batch_id=batch_id_for(batch_id_prefix, ids), sample_ids=ids,
                             embeddings=embeddings[start:stop].tobytes(),
                             metadata=metadata_columns(metadata, start, stop),
                             probabilities_are_logits=logits)
        setattr(msg, target_field, target_id)
        if labels is not None:
            msg.labels.extend(labels[start:stop].tolist())
        if probabilities is not None:
            msg.probabilities = probabilities[start:stop].tobytes()
        if uris is not None:
            msg.uris.extend(str(u) for u in uris[start:stop])
        yield msg


def columns_frame(columns: Sequence[pb.Column], rows: int) -> pd.DataFrame:
    """API metadata columns back into a DataFrame (timestamps as naive UTC datetimes)."""
    out = {}
    for col in columns:
        kind = col.WhichOneof("values")
        null = np.asarray(col.is_null, dtype=bool) if len(col.is_null) else np.zeros(rows, dtype=bool)
        if kind == "numbers":
            out[col.name] = np.asarray(col.numbers.values, dtype=np.float64)
        elif kind == "timestamps":
            values = np.asarray(col.timestamps.unix_micros, dtype=np.int64).astype("datetime64[us]")
            values[null] = np.datetime64("NaT")
            out[col.name] = values
        else:
            values = np.asarray(col.strings.values if kind else [""] * rows, dtype=object)
            values[null] = None
            out[col.name] = values
    return pd.DataFrame(out, index=pd.RangeIndex(rows))
