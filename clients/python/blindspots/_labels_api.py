"""Client methods for the labeling round trip: labels in, labels out, relabel requests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pandas as pd

from .results import KIND_NAMES
from .v1 import blindspots_pb2 as pb

# Rows per ImportLabels call (the server's default bound is 200k).
LABELS_PER_CALL = 50_000
# GetRunMap's upper bound: runs up to this size are read whole for relabel requests.


@dataclass(frozen=True)
class LabelsSummary:
    labels_stored: int
    labels_replaced: int
    total_labeled: int


class LabelsAPI:
    """Mixed into :class:`blindspots.Client`."""

    def import_labels(self, labels: pd.DataFrame, *, pool_id: str = "", run_id: str = "",
                      source: str = "") -> LabelsSummary:
        """Store ``labels`` (columns sample_id and label, a class name) against a pool's
        samples (``pool_id``) or, for relabeled test rows, a run's (``run_id``). Later
        Suggest rounds on the pool skip labeled samples."""
        missing = {"sample_id", "label"} - set(labels.columns)
        if missing:
            raise ValueError(f"labels needs columns sample_id and label; missing {sorted(missing)}")
        ids = labels["sample_id"].astype(str).tolist()
        names = labels["label"].astype(str).tolist()
        stored = replaced = total = 0
        for start in range(0, max(len(ids), 1), LABELS_PER_CALL):
            resp = self._unary(self.stub.ImportLabels, pb.ImportLabelsRequest(
                pool_id=pool_id, run_id=run_id, sample_ids=ids[start:start + LABELS_PER_CALL],
                labels=names[start:start + LABELS_PER_CALL], source=source))
            stored, replaced, total = stored + resp.labels_stored, replaced + resp.labels_replaced, resp.total_labeled
        return LabelsSummary(stored, replaced, total)

    def labels_frame(self, *, pool_id: str = "", run_id: str = "",
                     class_names: Optional[Sequence[str]] = None) -> pd.DataFrame:
        """Every stored label as (sample_id, uri, label, source, labeled_at), plus
        ``label_index`` (the class's position, -1 if unknown) given ``class_names``:
        the rows to add to the next training run."""
        m = self._unary(self.stub.ListLabels, pb.ListLabelsRequest(pool_id=pool_id, run_id=run_id))
        frame = pd.DataFrame({"sample_id": list(m.sample_ids), "uri": list(m.uris), "label": list(m.labels),
                              "source": list(m.sources),
                              "labeled_at": pd.to_datetime(list(m.labeled_at), unit="s", utc=True)})
        if class_names is not None:
            index = {str(c): i for i, c in enumerate(class_names)}
            frame["label_index"] = [index.get(v, -1) for v in frame["label"]]
        return frame

    def relabel_requests(self, run_id: str, *, diagnosis_id: str = "",
                         kinds: Sequence[str] = ("label_noise",)) -> pd.DataFrame:
        """The failed test rows of the diagnosis's regions of ``kinds`` (default: label
        noise) as a frame that :func:`blindspots.labeling.export_picks` sends to a
        labeling tool, with the row's given label as ``predicted_label`` (the
        pre-annotation an annotator confirms or corrects).

        Region membership comes from ListRegionMembers, page by page, so every
        failed member is included at any run size.
        """
        run = self.get_run(run_id)
        diagnosis = self.get_diagnosis(diagnosis_id=diagnosis_id, run_id="" if diagnosis_id else run_id)
        chosen = {r.id: r for r in diagnosis.message.regions if KIND_NAMES.get(r.kind) in set(kinds)}
        members = [m.assign(region=rid) for rid in chosen for m in [self.region_members(diagnosis.id, rid)]]
        pts = (pd.concat(members, ignore_index=True) if members
               else pd.DataFrame(columns=["sample_id", "uri", "region", "label", "predicted", "failed"]))
        pts = pts[pts["failed"].astype(bool)].reset_index(drop=True)
        names = list(run.message.class_names)

        def name(i: int) -> str:
            return names[i] if 0 <= i < len(names) else str(i)

        frame = pd.DataFrame({
            "rank": range(1, len(pts) + 1), "sample_id": pts["sample_id"], "uri": pts["uri"],
            "region_id": pts["region"].astype(int),
            "reason": [f"region R{r} ({KIND_NAMES.get(chosen[r].kind)}): labeled {name(g)!r}, the model says "
                       f"{name(p)!r}; please check the label" for r, g, p in
                       zip(pts["region"], pts["label"], pts["predicted"])],
            "slice": "", "predicted_label": pts["label"].astype(int), "confidence": 1.0,
            "model_predicted": [name(p) for p in pts["predicted"]]})
        frame.attrs["diagnosis"] = diagnosis.id
        return frame
