"""A Hugging Face ``transformers`` Trainer callback that logs evaluation predictions to blindspots.

    from blindspots.integrations.huggingface import BlindspotsTrainerCallback
    callback = BlindspotsTrainerCallback(client, class_names, model_name="bert-intent", diagnose=True)
    trainer = Trainer(model=model, args=args, eval_dataset=val, callbacks=[callback], ...)

``pip install 'blindspots[transformers]'``. After every ``every_n_evaluations``-th
evaluation, and at the end of training for a final version not logged yet (this
needs the evaluation loader: the Trainer evaluated at least once, or ``dataloader=``), the
model runs over the evaluation loader (or ``dataloader=``) and its predictions
and embeddings (by default the input of the last ``nn.Linear``: the pooled
output for ``*ForSequenceClassification``) go to a run named
``{model_name}-{version}``; ``version`` is ``model_version`` (a string, or a
function of the TrainerState) or ``step{global_step}``.

Batches are the Trainer's dicts: every key but ``labels`` (and ``label_names``)
is passed to the model as a keyword argument. The eval loader does not shuffle,
so row ids ``{id_prefix}{position}`` are stable across versions; pass
``batch_fn=`` to take ids from the batch instead.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from transformers import TrainerCallback

from ..client import Client
from .validation_logger import LoggedVersion, ValidationLogger


def trainer_batch(batch: Mapping, label_names: Sequence[str] = ("labels",)) -> dict:
    """A Trainer batch as torch_capture's dict: model kwargs as inputs, labels apart."""
    labels = next((batch[k] for k in label_names if k in batch), None)
    inputs = {k: v for k, v in batch.items() if k not in label_names}
    return {"inputs": inputs, "labels": labels}


def _logits(output: Any):
    return output["logits"] if isinstance(output, Mapping) else getattr(output, "logits", output)


class BlindspotsTrainerCallback(TrainerCallback):
    """Logs the evaluation set's predictions per model version; see the module doc."""

    def __init__(self, client: Client, class_names: Sequence[str], *, model_name: str,
                 every_n_evaluations: int = 1, at_train_end: bool = True,
                 model_version: Union[str, Callable[[Any], str], None] = None,
                 dataloader: Optional[Iterable] = None, label_names: Sequence[str] = ("labels",),
                 **logger_kwargs):
        if every_n_evaluations < 0:
            raise ValueError(f"every_n_evaluations must be >= 0 (0: only at train end), got {every_n_evaluations}")
        logger_kwargs.setdefault("batch_fn", lambda b: trainer_batch(b, label_names))
        logger_kwargs.setdefault("output_fn", _logits)
        self.logger = ValidationLogger(client, class_names, model_name=model_name, **logger_kwargs)
        self.every_n_evaluations = every_n_evaluations
        self.at_train_end = at_train_end
        self.model_version = model_version
        self.dataloader = dataloader
        self._evaluations = 0
        self._logged_steps: set[int] = set()

    @property
    def logged_(self) -> list[LoggedVersion]:
        return self.logger.logged_

    def _version(self, state) -> str:
        if callable(self.model_version):
            return str(self.model_version(state))
        step = f"step{state.global_step}"
        return f"{self.model_version}-{step}" if self.model_version else step

    def _log(self, state, model, eval_dataloader) -> None:
        if not state.is_world_process_zero or state.global_step in self._logged_steps:
            return
        loader = self.dataloader if self.dataloader is not None else eval_dataloader
        if model is None or loader is None:
            raise ValueError("BlindspotsTrainerCallback got no model or evaluation loader: "
                             "give the Trainer an eval_dataset, or pass dataloader=")
        self._logged_steps.add(state.global_step)
        self.logger.log(model, loader, self._version(state))

    def on_evaluate(self, args, state, control, model=None, eval_dataloader=None, **kwargs):
        self._evaluations += 1
        if self.every_n_evaluations and self._evaluations % self.every_n_evaluations == 0:
            self._log(state, model, eval_dataloader)

    def on_train_end(self, args, state, control, model=None, eval_dataloader=None, **kwargs):
        if self.at_train_end and (eval_dataloader is not None or self.dataloader is not None):
            self._log(state, model, eval_dataloader)
