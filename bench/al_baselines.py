"""Active-learning baselines from scikit-activeml, called the way its docs show.

Each baseline gets the same inputs: the labeled training rows and the unlabeled
pool (X = train + pool embeddings, y = train labels + missing), the already
trained model's outputs (wrapped as a fitted skactiveml classifier;
``fit_clf=False`` so no baseline retrains it differently), and the budget as
one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skactiveml.base import SkactivemlClassifier
from skactiveml.pool import Badge, CoreSet, RandomSampling, TypiClust, UncertaintySampling
from skactiveml.utils import MISSING_LABEL
from sklearn.cluster import MiniBatchKMeans

BASELINES = ("margin", "entropy", "coreset", "badge", "typiclust", "random")


class FittedModel(SkactivemlClassifier):
    """A model trained elsewhere, seen by scikit-activeml as a fitted classifier.

    Its outputs are computed once: ``X`` handed to it holds row numbers into
    ``probabilities`` / ``hidden`` (one column), so the strategies that only ask
    the classifier (uncertainty sampling, BADGE) see exactly the model's outputs.
    ``predict_proba(X, return_embeddings=True)`` also returns the hidden layer,
    which BADGE turns into gradient embeddings."""

    def __init__(self, probabilities=None, hidden=None, classes=None, missing_label=MISSING_LABEL,
                 random_state=None):
        super().__init__(classes=classes, missing_label=missing_label, random_state=random_state)
        self.probabilities = probabilities
        self.hidden = hidden

    def fit(self, X, y, sample_weight=None):
        self._validate_data(X, y, sample_weight)
        return self

    def predict_proba(self, X, return_embeddings=False):
        rows = np.asarray(X)[:, 0].astype(np.int64)
        p = np.asarray(self.probabilities[rows], dtype=np.float64)
        if return_embeddings:
            return p, np.asarray(self.hidden[rows], dtype=np.float64)
        return p


@dataclass
class ModelView:
    """What the baselines read: embeddings of train and pool rows, and the trained
    model's probabilities and hidden layer on the pool."""

    train_embeddings: np.ndarray
    train_labels: np.ndarray
    pool_embeddings: np.ndarray
    pool_probabilities: np.ndarray
    pool_hidden: np.ndarray
    num_classes: int


def query(name: str, view: ModelView, budget: int, seed: int) -> np.ndarray:
    """Pool rows (indices into the pool) picked by baseline ``name``."""
    n_train, n_pool = len(view.train_embeddings), len(view.pool_embeddings)
    y = np.concatenate([view.train_labels.astype(np.float64), np.full(n_pool, np.nan)])
    candidates = np.arange(n_train, n_train + n_pool)
    if name in ("margin", "entropy", "badge"):
        # Row numbers as features: the classifier answers from the model's outputs.
        x = np.arange(n_train + n_pool, dtype=np.float64)[:, None]
        pad = np.zeros((n_train,) + view.pool_probabilities.shape[1:])
        padh = np.zeros((n_train,) + view.pool_hidden.shape[1:])
        clf = FittedModel(np.concatenate([pad, view.pool_probabilities]),
                          np.concatenate([padh, view.pool_hidden]),
                          classes=np.arange(view.num_classes), random_state=seed)
        clf.fit(x[:n_train], y[:n_train])
        if name == "badge":
            qs = Badge(clf_embedding_flag_name="return_embeddings", random_state=seed)
        else:
            qs = UncertaintySampling(method="margin_sampling" if name == "margin" else "entropy",
                                     random_state=seed)
        picked = qs.query(x, y, clf, fit_clf=False, candidates=candidates, batch_size=budget)
        return np.asarray(picked, dtype=np.int64) - n_train
    x = np.concatenate([view.train_embeddings, view.pool_embeddings]).astype(np.float64)
    if name == "coreset":
        picked = CoreSet(random_state=seed).query(x, y, candidates=candidates, batch_size=budget)
    elif name == "typiclust":
        # |labeled| + budget clusters: full k-means would take minutes here; the
        # mini-batch variant with random init and 20 passes stays within seconds (k-means++ seeding
        # of thousands of clusters alone took most of the bench's time).
        qs = TypiClust(cluster_algo=MiniBatchKMeans,
                       cluster_algo_dict={"n_init": 1, "init": "random", "batch_size": 4096, "max_iter": 20},
                       random_state=seed)
        picked = qs.query(x, y, candidates=candidates, batch_size=budget)
    elif name == "random":
        picked = RandomSampling(random_state=seed).query(x, y, candidates=candidates, batch_size=budget)
    else:
        raise ValueError(f"unknown baseline {name!r}")
    return np.asarray(picked, dtype=np.int64) - n_train


def library_version() -> str:
    import skactiveml

    return skactiveml.__version__
