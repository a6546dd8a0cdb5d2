"""Where a family's inputs come from, and what each planted condition does to them.

- ``DigitImages``: scikit-learn's bundled handwritten digits (1,797 8x8
  images). Each row is a real image, jittered (1-pixel shift, grain); the
  conditions change the image before the CNN sees it (photometric: inverted
  low-contrast; geometric: rotated; occlusion: a blanked block; blur/noise;
  class_pair: blended towards another class's mean image).
- ``CancerTable``: scikit-learn's bundled Wisconsin breast-cancer table (569
  rows x 30 features). Rows are interpolations between real same-class rows;
  ``shift`` moves a third of the features towards the other class (a drifting
  instrument).
- ``LatentWorld``: synthetic, for any size and dimension: a latent vector per
  row (class mean + noise, shifted and class-permuted per condition) through a
  fixed random backbone.

Base images / table rows are partitioned by the seed into train, test and pool
parts, so no test row is a jittered copy of a training row.
"""
from __future__ import annotations

import numpy as np

from .base import Condition
from .models import MLP, DigitCNN, FeatureHead

SPLITS = ("train", "test", "pool")


def _partition(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    order = rng.permutation(n)
    a, b = int(0.5 * n), int(0.75 * n)
    return {"train": order[:a], "test": order[a:b], "pool": order[b:]}


def _pick_same_class(base_labels: np.ndarray, part: np.ndarray, labels: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """For each wanted label, a random base row of that class from the split's part."""
    out = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rows = part[base_labels[part] == c]
        where = np.flatnonzero(labels == c)
        out[where] = rng.choice(rows, len(where))
    return out


class DigitImages:
    num_classes = 10

    def __init__(self, seed: int, embed_dim: int = 64):
        from sklearn.datasets import load_digits

        data = load_digits()
        self.images = (data.images / 16.0).astype(np.float32)
        self.base_labels = data.target.astype(np.int64)
        self.parts = _partition(len(self.images), np.random.default_rng(seed + 17))
        self.means = np.stack([self.images[self.base_labels == c].mean(0) for c in range(10)])
        self.embed_dim = embed_dim
        self.seed = seed

    def make_model(self):
        return DigitCNN(self.num_classes, self.embed_dim, epochs=10, seed=self.seed)

    def inputs(self, split: str, labels: np.ndarray, condition: np.ndarray,
               conditions: tuple[Condition, ...], rng: np.random.Generator) -> np.ndarray:
        src = _pick_same_class(self.base_labels, self.parts[split], labels, rng)
        img = self.images[src].copy()
        # Jitter: a 1-pixel shift and grain, so repeated base images differ.
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rows = rng.random(len(img)) < 0.15
            img[rows] = np.roll(img[rows], (dy, dx), axis=(1, 2))
        img = np.clip(img + rng.normal(0, 0.04, img.shape), 0, 1)
        for k, cond in enumerate(conditions):
            rows = np.flatnonzero(condition == k)
            if len(rows):
                img[rows] = self._apply(cond, img[rows], rng)
        return img.reshape(len(img), 64).astype(np.float32)

    def _apply(self, cond: Condition, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = cond.strength
        if cond.kind == "photometric":
            return np.clip(0.5 + (0.5 - img) * s, 0, 1)           # inverted, contrast s
        if cond.kind == "geometric":
            return np.rot90(img, k=1, axes=(1, 2)).copy()
        if cond.kind == "occlusion":
            size = int(round(3 + 2 * s))
            out = img.copy()
            for i in range(len(out)):
                y, x = rng.integers(1, 8 - size + 1, 2) if size < 7 else (0, 0)
                out[i, y:y + size, x:x + size] = 0.0
            return out
        if cond.kind == "blur_noise":
            pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
            blur = sum(pad[:, dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)) / 9.0
            return np.clip(blur + rng.normal(0, 0.35 * s, img.shape), 0, 1)
        if cond.kind == "class_pair":
            return (1 - 0.6 * s) * img + 0.6 * s * self.means[cond.classes[1]]
        return img                                                  # label_noise: inputs untouched


class CancerTable:
    num_classes = 2

    def __init__(self, seed: int, embed_dim: int = 16):
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        x = data.data.astype(np.float64)
        self.rows = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
        self.base_labels = data.target.astype(np.int64)
        self.parts = _partition(len(self.rows), np.random.default_rng(seed + 17))
        self.means = np.stack([self.rows[self.base_labels == c].mean(0) for c in range(2)])
        self.shifted = np.random.default_rng(seed + 29).permutation(x.shape[1])[:10]
        self.embed_dim = embed_dim
        self.seed = seed

    def make_model(self):
        return MLP(self.num_classes, self.embed_dim, epochs=40, seed=self.seed)

    def inputs(self, split: str, labels: np.ndarray, condition: np.ndarray,
               conditions: tuple[Condition, ...], rng: np.random.Generator) -> np.ndarray:
        a = _pick_same_class(self.base_labels, self.parts[split], labels, rng)
        b = _pick_same_class(self.base_labels, self.parts[split], labels, rng)
        t = rng.random((len(labels), 1)).astype(np.float32)
        x = t * self.rows[a] + (1 - t) * self.rows[b] + rng.normal(0, 0.1, (len(labels), self.rows.shape[1]))
        for k, cond in enumerate(conditions):
            rows = np.flatnonzero(condition == k)
            if len(rows) and cond.kind == "shift":
                other = 1 - labels[rows]
                x[rows] += cond.strength * (self.means[other] - self.means[labels[rows]])
                x[np.ix_(rows, self.shifted)] += 1.0      # the instrument's offset
        return x.astype(np.float32)


class LatentWorld:
    latent_dim = 24

    def __init__(self, seed: int, dim: int = 128, num_classes: int = 8, num_conditions: int = 6):
        rng = np.random.default_rng(seed + 101)
        self.num_classes = num_classes
        self.class_means = rng.normal(0, 1, (num_classes, self.latent_dim)) * 1.6
        offsets = rng.normal(0, 1, (max(num_conditions, 1), self.latent_dim))
        self.offsets = offsets / np.linalg.norm(offsets, axis=1, keepdims=True) * 6.0
        self.perms = [np.roll(np.arange(num_classes), 1 + k % (num_classes - 1))
                      for k in range(max(num_conditions, 1))]
        self.backbone = rng.normal(0, 1, (self.latent_dim, dim)) / np.sqrt(self.latent_dim)
        self.dim = dim
        self.seed = seed

    def make_model(self):
        return FeatureHead(self.num_classes, hidden=64, epochs=20, seed=self.seed)

    def inputs(self, split: str, labels: np.ndarray, condition: np.ndarray,
               conditions: tuple[Condition, ...], rng: np.random.Generator) -> np.ndarray:
        shown = labels.copy()
        latent = np.zeros((len(labels), self.latent_dim))
        for k, cond in enumerate(conditions):
            rows = condition == k
            if cond.kind == "class_pair":
                pushed = rows & (rng.random(len(labels)) < cond.strength)
                shown[pushed] = cond.classes[1]
                continue
            latent[rows] += self.offsets[k]
            if cond.kind != "label_noise":
                # A data gap: the class signal is scrambled (for a ``strength`` share of the
                # rows) where the model has not learned it.
                scrambled = rows & (rng.random(len(labels)) < cond.strength)
                shown[scrambled] = self.perms[k][labels[scrambled]]
        latent += self.class_means[shown] + rng.normal(0, 1.5, latent.shape)
        emb = latent @ self.backbone + rng.normal(0, 0.05, (len(labels), self.dim))
        return emb.astype(np.float32)
