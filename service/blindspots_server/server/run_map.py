"""GetRunMap's work: read a run's rows and its diagnosis, map them, build the message."""
from __future__ import annotations

from typing import Optional

import numpy as np

from blindspots.v1 import blindspots_pb2 as pb

from ..core.embedding_map import EmbeddingMapper
from ..storage import RunRecord, Store
from .diagnosed_rows import align

DEFAULT_MAX_POINTS = 3000
MAX_POINTS = 20000


def run_map_message(store: Store, run: RunRecord, diagnosis: Optional[pb.Diagnosis], max_points: int,
                    seed: int, projection: str = "") -> pb.RunMap:
    """The map of ``run`` with failures and regions from ``diagnosis``; without one (and
    for rows logged after it), failures are the mispredicted rows and no point is in a region.
    Points sit where the diagnosis laid out its clustering space, unless ``projection`` is
    "pca", the diagnosis has no layout (none, or one stored before layouts were), or the
    run has rows the diagnosis did not see: then PCA of the embeddings."""
    rows = store.read_row_data("run", run.id, ["sample_id", "label", "probabilities", "embedding", "uri"])
    predicted = (rows.probabilities.argmax(axis=1).astype(np.int64) if rows.probabilities is not None
                 else np.full(len(rows), -1, dtype=np.int64))
    failed = predicted != rows.labels
    regions = np.full(len(rows), -1, dtype=np.int64)
    not_diagnosed = 0
    layout = None
    if diagnosis is not None:
        per_sample = store.diagnosis_rows(diagnosis.id)
        seen = align(per_sample, rows.sample_ids, diagnosis.id)
        regions = seen.region
        failed = np.where(seen.diagnosed, seen.failed, failed)    # rows added later: mispredicted
        not_diagnosed = seen.num_not_diagnosed
        if projection != "pca" and "map_x" in per_sample.column_names and not not_diagnosed:
            at = seen.where
            layout = np.stack([per_sample.column("map_x").to_numpy()[at], per_sample.column("map_y").to_numpy()[at]],
                              axis=1)
    mapped = EmbeddingMapper(max_points=max_points or DEFAULT_MAX_POINTS, seed=seed).fit(rows.embeddings, regions,
                                                                                       layout=layout)
    idx = mapped.indices
    return pb.RunMap(
        run_id=run.id, diagnosis_id=diagnosis.id if diagnosis is not None else "", num_samples=len(rows),
        coordinates=np.ascontiguousarray(mapped.coordinates, dtype="<f4").tobytes(),
        sample_ids=[str(s) for s in rows.sample_ids[idx]], uris=[str(u) for u in rows.uris[idx]],
        failed=failed[idx].tolist(), region_ids=regions[idx].astype(np.int32).tolist(),
        labels=rows.labels[idx].astype(np.int32).tolist(), predicted=predicted[idx].astype(np.int32).tolist(),
        explained_variance=mapped.explained_variance, num_not_diagnosed=not_diagnosed,
        projection="clustering_space" if layout is not None else "pca")
