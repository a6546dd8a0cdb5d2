"""What counts as a failure: mispredictions, or the highest-loss fraction of rows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAILURE_DEFINITIONS = ("mispredicted", "top_loss")


@dataclass
class Outcomes:
    """Per test row: the model's prediction, its confidence, its loss and whether it failed."""

    predicted: np.ndarray      # int64
    confidence: np.ndarray     # float64, max probability
    loss: np.ndarray           # float64, cross-entropy against the given label
    failed: np.ndarray         # bool


def model_outcomes(labels: np.ndarray, probabilities: np.ndarray,
                   failure_definition: str = "mispredicted",
                   top_loss_quantile: float = 0.1) -> Outcomes:
    """Predictions, confidences, losses and the failure mask under one failure definition."""
    if failure_definition not in FAILURE_DEFINITIONS:
        raise ValueError(f"failure_definition must be one of {FAILURE_DEFINITIONS}, "
                         f"got {failure_definition!r}")
    probs = np.asarray(probabilities, dtype=np.float64)
    predicted = probs.argmax(axis=1).astype(np.int64)
    confidence = probs[np.arange(len(probs)), predicted]
    given = np.clip(probs[np.arange(len(probs)), labels], 1e-12, 1.0)
    loss = -np.log(given)
    if failure_definition == "mispredicted":
        failed = predicted != labels
    else:
        if not 0.0 < top_loss_quantile < 1.0:
            raise ValueError(f"top_loss_quantile must be in (0, 1), got {top_loss_quantile}")
        count = max(1, int(round(top_loss_quantile * len(loss))))
        # Rank rather than threshold so ties at the cut do not inflate the failure count.
        order = np.argsort(-loss, kind="stable")
        failed = np.zeros(len(loss), dtype=bool)
        failed[order[:count]] = True
    return Outcomes(predicted=predicted, confidence=confidence, loss=loss, failed=failed)
