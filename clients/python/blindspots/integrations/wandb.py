"""Log a diagnosis to a Weights & Biases run: its headline numbers as metrics, its regions and slices
as tables, its findings as a versioned artifact.

    run = wandb.init(project="listings")
    ...train, evaluate, bs_run.log_predictions(...)...
    log_diagnosis(bs_run.diagnose(), step=epoch)    # blindspots/* metrics, two tables, an artifact

Metrics (prefix ``blindspots/``, one panel section in the W&B UI) are those of
:func:`blindspots.integrations.tracking.headline_numbers`. ``blindspots/regions_table`` and
``blindspots/slices_table`` are ``wandb.Table`` s of the regions and slices frames. The run's summary
gets the blindspots run, diagnosis and baseline run ids. The artifact, type ``blindspots-diagnosis``,
is named after the blindspots run (``blindspots-<run id>``), so each diagnosis of a run is a new
version of it, aliased with the diagnosis id; it holds ``summary.txt``, ``regions.csv``, ``slices.csv``
and ``diagnosis.json``. Needs ``wandb``; imports it only when this module is imported.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

import wandb

from ..results import Diagnosis
from .tracking import diagnosis_files, headline_numbers

ARTIFACT_TYPE = "blindspots-diagnosis"


def diagnosis_metrics(diagnosis: Diagnosis, prefix: str = "blindspots") -> dict[str, float]:
    """The numbers :func:`log_diagnosis` logs, by metric name."""
    return {f"{prefix}/{name}": value for name, value in headline_numbers(diagnosis).items()}


def log_diagnosis(diagnosis: Diagnosis, *, run: Optional[Any] = None, step: Optional[int] = None,
                  prefix: str = "blindspots", artifact: bool = True) -> dict[str, float]:
    """Log ``diagnosis`` to ``run`` (default: ``wandb.run``, the active run; ValueError when there
    is none): metrics and tables at ``step`` (W&B's own step when None), ids in the summary, and
    (``artifact``) the findings as an artifact. Returns the metrics logged."""
    run = run if run is not None else wandb.run
    if run is None:
        raise ValueError("log_diagnosis: no active W&B run; call wandb.init() first or pass run=")
    metrics = diagnosis_metrics(diagnosis, prefix)
    tables = {f"{prefix}/regions_table": wandb.Table(dataframe=diagnosis.to_frame()),
              f"{prefix}/slices_table": wandb.Table(dataframe=diagnosis.slices_frame())}
    if step is None:
        run.log({**metrics, **tables})
    else:
        run.log({**metrics, **tables}, step=step)
    ids = {f"{prefix}/run_id": diagnosis.run_id, f"{prefix}/diagnosis_id": diagnosis.id}
    if diagnosis.previous_version is not None:
        ids[f"{prefix}/baseline_run_id"] = diagnosis.previous_version.message.run_id_a
    run.summary.update(ids)
    if artifact:
        found = wandb.Artifact(f"{prefix}-{diagnosis.run_id}", type=ARTIFACT_TYPE,
                               metadata={**ids, **metrics})
        with tempfile.TemporaryDirectory(prefix="blindspots-wandb-") as folder:
            for name, text in diagnosis_files(diagnosis).items():
                path = os.path.join(folder, name)
                with open(path, "w") as out:
                    out.write(text)
                found.add_file(path, name=name)     # copied into W&B's staging area here
            run.log_artifact(found, aliases=[diagnosis.id])
    return metrics
