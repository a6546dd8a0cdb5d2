"""Labeling-tool formats: send picks out as tasks, read the tool's export back.

    from blindspots.labeling import label_studio_tasks, read_label_studio_export
    tasks = label_studio_tasks(picks, class_names)          # Label Studio import JSON (a list of tasks)
    labels = read_label_studio_export("export.json")        # DataFrame: sample_id, label, uri, ...

Label Studio's formats, as its documentation describes them:

- import: a JSON list of tasks ``{"data": {...}, "predictions": [{"model_version", "score",
  "result": [{"from_name", "to_name", "type": "choices", "value": {"choices": [NAME]}}]}]}``;
  a prediction is shown to the annotator as a pre-annotation;
- export ``JSON``: the same tasks with ``"annotations": [{"result": [...], "was_cancelled", ...}]``;
- export ``JSON_MIN``: one flat object per annotated task, the data keys plus the
  choice under the control's name (``"label": "cat"``).

The labeling configuration (:func:`label_studio_config`) has an ``Image`` object
named ``image`` reading ``$image`` and a single-choice ``Choices`` control named
``label``; ``data_key`` / ``from_name`` change those names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union
from urllib.parse import quote, unquote, urlparse
from xml.sax.saxutils import quoteattr

import pandas as pd

from .results import write_manifest

DATA_KEY = "image"
FROM_NAME = "label"
LABEL_COLUMNS = ["sample_id", "label", "uri", "task_id", "annotator", "labeled_at"]


def label_studio_config(class_names: Sequence[str], data_key: str = DATA_KEY, from_name: str = FROM_NAME) -> str:
    """The labeling configuration (XML) that the tasks of :func:`label_studio_tasks` fit."""
    choices = "\n".join(f"    <Choice value={quoteattr(str(c))}/>" for c in class_names)
    return (f"<View>\n  <Image name={quoteattr(data_key)} value={quoteattr('$' + data_key)}/>\n"
            f"  <Choices name={quoteattr(from_name)} toName={quoteattr(data_key)} choice=\"single\" "
            f"showInline=\"true\">\n{choices}\n  </Choices>\n"
            "  <Header value=\"Why blindspots picked it: $reason\"/>\n</View>\n")


def task_uri(uri: str, local_files_root: Optional[str] = None) -> str:
    """The URI a Label Studio task names: ``file://`` paths under ``local_files_root``
    become Label Studio's local-files URLs (``/data/local-files/?d=REL``), which it
    serves when ``LOCAL_FILES_SERVING_ENABLED`` is set with that document root;
    other URIs pass as they are."""
    if not local_files_root or not uri:
        return uri
    parsed = urlparse(uri)
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else (Path(uri) if not parsed.scheme else None)
    if path is None:
        return uri
    try:
        rel = path.resolve().relative_to(Path(local_files_root).resolve())
    except ValueError:
        return uri
    return "/data/local-files/?d=" + quote(rel.as_posix())


def label_studio_tasks(picks: pd.DataFrame, class_names: Sequence[str], *, model_version: str = "",
                       data_key: str = DATA_KEY, from_name: str = FROM_NAME,
                       local_files_root: Optional[str] = None) -> list[dict]:
    """Label Studio import tasks, one per row of a suggestion (or relabel) frame.

    ``data`` carries the sample's URI under ``data_key`` plus ``sample_id``, ``rank``,
    ``reason``, ``region`` and ``slice`` (what the annotator and the export keep);
    the row's ``predicted_label`` (an index into ``class_names``, -1: none) becomes the
    pre-annotation with its ``confidence`` as score. A relabel frame gives the
    test row's given label as ``predicted_label`` instead, so the annotator confirms
    or corrects it.
    """
    tasks = []
    for row in picks.to_dict("records"):
        data = {data_key: task_uri(str(row.get("uri", "") or ""), local_files_root),
                "sample_id": str(row["sample_id"]), "reason": str(row.get("reason", "") or ""),
                "region": int(row.get("region_id", -1)), "slice": str(row.get("slice", "") or "")}
        if "rank" in row:
            data["rank"] = int(row["rank"])
        task: dict = {"data": data}
        predicted = int(row.get("predicted_label", -1))
        if 0 <= predicted < len(class_names):
            task["predictions"] = [{
                "model_version": model_version or "blindspots",
                "score": float(row.get("confidence", 0.0)),
                "result": [{"from_name": from_name, "to_name": data_key, "type": "choices",
                            "value": {"choices": [str(class_names[predicted])]}}]}]
        tasks.append(task)
    return tasks


def write_label_studio_tasks(picks: pd.DataFrame, class_names: Sequence[str], path: Union[str, Path],
                             **kwargs) -> Path:
    """Write the import tasks to ``path`` (JSON) and the labeling configuration
    beside it (``<stem>.label_config.xml``); returns the tasks' path."""
    path = Path(path)
    path.write_text(json.dumps(label_studio_tasks(picks, class_names, **kwargs), indent=1), encoding="utf-8")
    names = {k: kwargs[k] for k in ("data_key", "from_name") if k in kwargs}
    path.with_name(path.stem + ".label_config.xml").write_text(label_studio_config(class_names, **names),
                                                               encoding="utf-8")
    return path


def _choice(result: list, from_name: Optional[str]) -> Optional[str]:
    for item in result or []:
        if item.get("type") != "choices" or (from_name and item.get("from_name") != from_name):
            continue
        choices = (item.get("value") or {}).get("choices") or []
        if choices:
            return str(choices[0])
    return None


def read_label_studio_export(source: Union[str, Path, list], *, from_name: Optional[str] = None,
                             data_key: str = DATA_KEY) -> pd.DataFrame:
    """Labels from a Label Studio export (``JSON`` or ``JSON_MIN``; a path or the
    parsed list): one row per task that has a label, columns sample_id, label, uri,
    task_id, annotator, labeled_at.

    Per task the newest annotation that was not cancelled and chose a class wins
    (``from_name``: only that control's choice; default: the first choices result).
    Tasks without a ``sample_id`` in their data were not made by blindspots and
    raise ValueError naming the task; unlabeled tasks are left out, and their
    count is in ``frame.attrs["unlabeled"]``.
    """
    tasks = json.loads(Path(source).read_text(encoding="utf-8")) if isinstance(source, (str, Path)) else source
    if not isinstance(tasks, list):
        raise ValueError("a Label Studio export is a JSON list of tasks")
    rows, unlabeled = [], 0
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise ValueError(f"task {i}: expected an object, got {type(task).__name__}")
        full = "annotations" in task or "data" in task
        data = task.get("data", {}) if full else task
        if "sample_id" not in data:
            raise ValueError(f"task {task.get('id', i)}: no data.sample_id; export tasks that "
                             "`blindspots suggest --format label-studio` wrote")
        label, annotator, when = None, None, None
        if full:
            done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
            done.sort(key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
            for a in reversed(done):
                label = _choice(a.get("result"), from_name)
                if label is not None:
                    annotator, when = a.get("completed_by"), a.get("updated_at") or a.get("created_at")
                    break
        else:
            value = task.get(from_name or FROM_NAME)
            if isinstance(value, dict):                     # {"choices": [...]} in some versions
                value = (value.get("choices") or [None])[0]
            elif isinstance(value, list):
                value = value[0] if value else None
            label = None if value is None else str(value)
            annotator, when = task.get("annotator"), task.get("updated_at") or task.get("created_at")
        if label is None:
            unlabeled += 1
            continue
        rows.append({"sample_id": str(data["sample_id"]), "label": label, "uri": str(data.get(data_key, "")),
                     "task_id": task.get("id"), "annotator": None if annotator is None else str(annotator),
                     "labeled_at": when})
    frame = pd.DataFrame(rows, columns=LABEL_COLUMNS).drop_duplicates("sample_id", keep="last")
    frame.attrs["unlabeled"] = unlabeled
    return frame.reset_index(drop=True)


def coco_classification(picks: pd.DataFrame, class_names: Sequence[str]) -> dict:
    """A COCO-style JSON (images, categories, annotations) for tools that read COCO.

    Classification has no boxes: each image carries the blindspots fields
    (sample_id, rank, reason, region), and the model's prediction is an
    annotation with ``"score"`` (as in COCO results files) that a tool can show
    as a pre-annotation. Category ids are class index + 1 (COCO reserves 0).
    """
    images, annotations = [], []
    for i, row in enumerate(picks.to_dict("records"), start=1):
        uri = str(row.get("uri", "") or "")
        images.append({"id": i, "file_name": uri, "sample_id": str(row["sample_id"]),
                       "rank": int(row.get("rank", i)), "reason": str(row.get("reason", "") or ""),
                       "region": int(row.get("region_id", -1))})
        predicted = int(row.get("predicted_label", -1))
        if 0 <= predicted < len(class_names):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": predicted + 1,
                                "score": float(row.get("confidence", 0.0))})
    return {"info": {"description": "samples to label, picked by blindspots"}, "images": images,
            "categories": [{"id": k + 1, "name": str(n)} for k, n in enumerate(class_names)],
            "annotations": annotations}


FORMATS = ("parquet", "csv", "label-studio", "coco")


def picks_format(path: Union[str, Path], format: str = "") -> str:
    """The format named, or the one a file name implies (.parquet/.pq, .csv; .json: label-studio)."""
    if format:
        if format not in FORMATS:
            raise ValueError(f"format {format!r}: use one of {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    by_suffix = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "label-studio"}
    if suffix not in by_suffix:
        raise ValueError(f"path {str(path)!r}: use .parquet, .csv or .json, or name a format")
    return by_suffix[suffix]


def export_picks(frame: pd.DataFrame, path: Union[str, Path], format: str, class_names: Sequence[str],
                 model_version: str = "", local_files_root: Optional[str] = None) -> Path:
    """Write picks for a labeling tool: a Parquet/CSV manifest, Label Studio tasks
    (+ its labeling config) or a COCO-style JSON. Returns the path written."""
    path = Path(path)
    if format in ("parquet", "csv"):
        if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
            path = path.with_suffix("." + format)
        return write_manifest(frame, path)
    if format == "label-studio":
        return write_label_studio_tasks(frame, class_names, path, model_version=model_version,
                                        local_files_root=local_files_root)
    path.write_text(json.dumps(coco_classification(frame, class_names), indent=1), encoding="utf-8")
    return path
