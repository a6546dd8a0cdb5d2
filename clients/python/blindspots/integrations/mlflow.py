"""Log a diagnosis to an MLflow run: its headline numbers as metrics, what it found as artifacts.

    with mlflow.start_run():
        ...train, evaluate, run.log_predictions(...)...
        log_diagnosis(run.diagnose())        # blindspots.* metrics, tags and a blindspots/ artifact folder

The metrics (prefix ``blindspots.``): ``error_rate``, ``failures``, ``regions``, ``label_noise_regions``,
``failures_in_regions`` (share of the failures that some region holds), ``worst_region_error_rate`` and
``worst_region_lift`` (0 without regions); with a previous version of the model to compare with,
``version_regressions`` (findings significantly worse, as ``--fail-on-regression`` counts them) and
``error_rate_change``. Tags name the blindspots run, diagnosis and baseline run. Artifacts: ``summary.txt``,
``regions.csv``, ``slices.csv`` and ``diagnosis.json`` (the Diagnosis message in protobuf's JSON mapping).
Needs ``mlflow`` (or ``mlflow-skinny``); imports it only when this module is imported.
"""
from __future__ import annotations

from typing import Optional

import mlflow

from ..results import Diagnosis
from .tracking import diagnosis_files, headline_numbers


def diagnosis_metrics(diagnosis: Diagnosis, prefix: str = "blindspots") -> dict[str, float]:
    """The numbers :func:`log_diagnosis` logs, by metric name."""
    return {f"{prefix}.{name}": value for name, value in headline_numbers(diagnosis).items()}


def log_diagnosis(diagnosis: Diagnosis, *, run_id: Optional[str] = None, step: Optional[int] = None,
                  prefix: str = "blindspots", artifact_path: str = "blindspots") -> dict[str, float]:
    """Log ``diagnosis`` to the MLflow run ``run_id`` (default: the active run; ValueError when
    there is none): metrics at ``step``, tags, and artifacts under ``artifact_path``. Returns the
    metrics logged."""
    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise ValueError("log_diagnosis: no active MLflow run; call it inside mlflow.start_run() or pass run_id")
        run_id = active.info.run_id
    client = mlflow.MlflowClient()
    metrics = diagnosis_metrics(diagnosis, prefix)
    for name, value in metrics.items():
        client.log_metric(run_id, name, value, step=step or 0)
    tags = {f"{prefix}.run_id": diagnosis.run_id, f"{prefix}.diagnosis_id": diagnosis.id}
    if diagnosis.previous_version is not None:
        tags[f"{prefix}.baseline_run_id"] = diagnosis.previous_version.message.run_id_a
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for name, text in diagnosis_files(diagnosis).items():
        client.log_text(run_id, text, f"{artifact_path}/{name}")
    return metrics
