"""ImportLabels / ListLabels: labels from a labeling tool, stored per run or pool sample."""
from __future__ import annotations

import time

from blindspots.v1 import blindspots_pb2 as pb

from ..storage import Store
from .validation import MAX_NAME_LEN, MAX_SAMPLE_ID_LEN, require


def import_labels(store: Store, target: str, target_id: str, request: pb.ImportLabelsRequest,
                  class_names: list[str], max_rows: int) -> pb.ImportLabelsResponse:
    """Validate and store the request's labels; ``class_names`` (a run's) limits
    the labels allowed, empty allows any name (pools carry no class names)."""
    ids, labels = list(request.sample_ids), list(request.labels)
    require(len(ids) > 0, "sample_ids", "is empty")
    require(len(ids) <= max_rows, "sample_ids", f"has {len(ids)} ids; at most {max_rows} per call")
    require(len(labels) == len(ids), "labels", f"has {len(labels)} values but sample_ids has {len(ids)}")
    require(len(request.source) <= MAX_NAME_LEN, "source", f"is longer than {MAX_NAME_LEN} characters")
    allowed = set(class_names)
    for i, (sid, label) in enumerate(zip(ids, labels)):
        require(0 < len(sid) <= MAX_SAMPLE_ID_LEN, f"sample_ids[{i}]",
                f"must be 1 to {MAX_SAMPLE_ID_LEN} characters")
        require(0 < len(label) <= MAX_NAME_LEN, f"labels[{i}]", f"must be 1 to {MAX_NAME_LEN} characters")
        require(not allowed or label in allowed, f"labels[{i}]",
                f"{label!r} is not one of the run's class names")
    unknown = store.unknown_sample_ids(target, target_id, ids)
    require(not unknown, "sample_ids", f"{len(unknown)} ids are not in {target} {target_id!r}, e.g. "
            f"{unknown[0]!r}" if unknown else "")
    outcome = store.save_labels(target, target_id, ids, labels, request.source, time.time())
    return pb.ImportLabelsResponse(labels_stored=outcome.stored, labels_replaced=outcome.replaced,
                                   total_labeled=outcome.total)


def list_labels(store: Store, target: str, target_id: str) -> pb.LabelSet:
    """Every label of the target with its sample's URI (empty when the sample has none)."""
    records = store.read_labels(target, target_id)
    if not records:
        return pb.LabelSet()
    table = store.read_rows(target, target_id, ["sample_id", "uri"])
    uri_of = dict(zip(table.column("sample_id").to_pylist(), table.column("uri").to_pylist()))
    return pb.LabelSet(sample_ids=[r.sample_id for r in records],
                       uris=[uri_of.get(r.sample_id) or "" for r in records],
                       labels=[r.label for r in records], sources=[r.source for r in records],
                       labeled_at=[r.labeled_at for r in records])
