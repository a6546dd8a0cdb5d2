"""A PyTorch Lightning callback that logs validation predictions to blindspots.

    from blindspots.integrations.lightning import BlindspotsCallback
    callback = BlindspotsCallback(client, class_names, model_name="listings-mlp", every_n_epochs=5,
                                  diagnose=True)
    trainer = lightning.Trainer(callbacks=[callback], ...)

Works with ``pytorch_lightning`` or ``lightning`` (``pip install 'blindspots[lightning]'``).
After validation ends on every ``every_n_epochs``-th epoch, and at fit end for a
final version not logged yet, the LightningModule runs over the validation
loader (or ``dataloader=``) and its predictions and embeddings go to a run
named ``{model_name}-{version}``; ``version`` is ``model_version`` (a string, or
a function of the trainer) or ``epoch{N}``, N the number of epochs trained.
Only global rank 0 logs.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Union

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:                                    # the standalone package
    from pytorch_lightning.callbacks import Callback

from ..client import Client
from .validation_logger import LoggedVersion, ValidationLogger


class BlindspotsCallback(Callback):
    """Logs the validation set's predictions per model version; see the module doc.

    ``logged_`` lists what was logged (run, rows, diagnosis). Remaining keyword
    arguments go to :class:`.validation_logger.ValidationLogger` (project,
    diagnose, layer, batch_fn, output_fn, ...).
    """

    def __init__(self, client: Client, class_names: Sequence[str], *, model_name: str,
                 every_n_epochs: int = 1, at_fit_end: bool = True,
                 model_version: Union[str, Callable[[Any], str], None] = None,
                 dataloader: Optional[Iterable] = None, **logger_kwargs):
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0 (0: only at fit end), got {every_n_epochs}")
        self.logger = ValidationLogger(client, class_names, model_name=model_name, **logger_kwargs)
        self.every_n_epochs = every_n_epochs
        self.at_fit_end = at_fit_end
        self.model_version = model_version
        self.dataloader = dataloader
        self._logged_epochs: set[int] = set()      # epochs trained when logged

    @property
    def logged_(self) -> list[LoggedVersion]:
        return self.logger.logged_

    def _version(self, trainer, epochs: int) -> str:
        if callable(self.model_version):
            return str(self.model_version(trainer))
        epoch = f"epoch{epochs}"
        return f"{self.model_version}-{epoch}" if self.model_version else epoch

    def _loader(self, trainer) -> Optional[Iterable]:
        if self.dataloader is not None:
            return self.dataloader
        loaders = trainer.val_dataloaders
        if isinstance(loaders, (list, tuple)):
            return loaders[0] if loaders else None
        return loaders

    def _log(self, trainer, pl_module, epochs: int) -> None:
        if trainer.global_rank != 0 or epochs in self._logged_epochs:
            return
        loader = self._loader(trainer)
        if loader is None:
            raise ValueError("BlindspotsCallback found no validation loader: pass dataloader=")
        self._logged_epochs.add(epochs)
        self.logger.log(pl_module, loader, self._version(trainer, epochs))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.every_n_epochs == 0:
            return
        # Validation at the end of epoch index e: e + 1 epochs trained.
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module, trainer.current_epoch + 1)

    def on_fit_end(self, trainer, pl_module) -> None:
        # By fit end the loop has counted the last epoch: current_epoch = epochs trained.
        if self.at_fit_end:
            self._log(trainer, pl_module, trainer.current_epoch)
