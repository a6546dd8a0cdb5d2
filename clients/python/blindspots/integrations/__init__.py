"""Training-framework callbacks that log validation predictions to blindspots.

``blindspots.integrations.lightning.BlindspotsCallback`` (PyTorch Lightning) and
``blindspots.integrations.huggingface.BlindspotsTrainerCallback`` (transformers'
Trainer) share :class:`~blindspots.integrations.validation_logger.ValidationLogger`.
``blindspots.integrations.mlflow.log_diagnosis`` logs a diagnosis to an MLflow run,
``blindspots.integrations.wandb.log_diagnosis`` to a Weights & Biases run (both from
:mod:`~blindspots.integrations.tracking`).
Each module imports its framework only when imported itself.
"""
