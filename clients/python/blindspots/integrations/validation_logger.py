"""Log a validation pass to a run named after the model version, optionally diagnose.

The framework callbacks decide *when* (every N epochs, at fit end); this class
does the *what*: capture probabilities and embeddings with
:mod:`blindspots.torch_capture`, create the version's run on the first chunk
(the embedding size is known only then), stream the rows, diagnose.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from torch import nn

from ..client import Client, Run
from ..results import Diagnosis
from ..torch_capture import iter_captured

log = logging.getLogger("blindspots.integrations")


@dataclass
class LoggedVersion:
    """One model version logged: its run, the rows sent and the diagnosis if one ran."""

    model_version: str
    run: Run
    rows: int
    diagnosis: Optional[Diagnosis] = None


class ValidationLogger:
    """Logs one model's validation predictions, one run per model version.

    ``client``: a :class:`blindspots.Client`. The run is named
    ``f"{model_name}-{version}"`` and carries ``model_name``/``model_version``, so
    Prometheus series and ``blindspots compare`` line versions up. ``diagnose``:
    diagnose each logged run (the diagnosis is kept in ``logged_``). ``layer``,
    ``batch_fn``, ``output_fn``: as in :func:`blindspots.torch_capture.capture`.
    """

    def __init__(self, client: Client, class_names: Sequence[str], *, model_name: str, project: str = "",
                 dataset_name: str = "", diagnose: bool = False, layer: Union[str, nn.Module, None] = None,
                 batch_fn: Optional[Callable[[Any], Mapping]] = None, output_fn: Optional[Callable] = None,
                 id_prefix: str = "val-", chunk_rows: int = 8192, diagnose_params: Optional[dict] = None):
        if not model_name:
            raise ValueError("model_name is required: runs are named after the model and its version")
        self.client = client
        self.class_names = list(class_names)
        self.model_name = model_name
        self.project = project
        self.dataset_name = dataset_name
        self.diagnose = diagnose
        self.layer = layer
        self.batch_fn = batch_fn
        self.output_fn = output_fn
        self.id_prefix = id_prefix
        self.chunk_rows = chunk_rows
        self.diagnose_params = dict(diagnose_params or {})
        self.logged_: list[LoggedVersion] = []

    def log(self, model: nn.Module, loader: Iterable, model_version: str) -> LoggedVersion:
        """Run ``model`` over ``loader`` (eval mode, no gradients), log the rows to a
        new run for ``model_version``, diagnose if asked; returns what was logged."""
        run: Optional[Run] = None
        rows = 0
        for chunk in iter_captured(model, loader, layer=self.layer, id_prefix=self.id_prefix,
                                   batch_fn=self.batch_fn, output_fn=self.output_fn, chunk_rows=self.chunk_rows):
            if chunk.labels is None:
                raise ValueError("the validation batches carry no labels; pass batch_fn= to say where they are")
            if run is None:
                run = self.client.create_run(f"{self.model_name}-{model_version}", class_names=self.class_names,
                                             embedding_dim=int(chunk.embeddings.shape[1]), project=self.project,
                                             model_name=self.model_name, model_version=model_version,
                                             dataset_name=self.dataset_name)
            run.log_predictions(chunk.sample_ids, chunk.embeddings, labels=chunk.labels,
                                probabilities=chunk.probabilities,
                                metadata=chunk.metadata, uris=chunk.uris, progress=False)
            rows += len(chunk)
        if run is None:
            raise ValueError("the validation loader yielded no batches")
        logged = LoggedVersion(model_version, run.refresh(), rows)
        if self.diagnose:
            logged.diagnosis = run.diagnose(progress=False, **self.diagnose_params)
            log.info("blindspots: %s", logged.diagnosis.summary(max_regions=3))
        self.logged_.append(logged)
        return logged
