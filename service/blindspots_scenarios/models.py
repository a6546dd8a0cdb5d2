"""Small torch models the families train on the CPU: a CNN for 8x8 digit images, an MLP otherwise.

Both follow ``base.Model``: ``fit(inputs, labels)``, ``embed(inputs)`` (the
penultimate layer: what a diagnosis clusters) and ``predict_proba(inputs)``.
"""
from __future__ import annotations

import numpy as np


class _TorchModel:
    """Training loop shared by the models: Adam, mini-batches, fixed seed."""

    def __init__(self, num_classes: int, embed_dim: int, epochs: int, seed: int):
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.epochs = epochs
        self.seed = seed

    def _body(self, in_dim: int):
        raise NotImplementedError

    def fit(self, inputs: np.ndarray, labels: np.ndarray):
        import torch

        torch.manual_seed(self.seed)
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.mean_ = x.mean(0, keepdim=True)
        self.std_ = x.std(0, keepdim=True) + 1e-3
        x = (x - self.mean_) / self.std_
        self.body_ = self._body(x.shape[1])
        self.head_ = torch.nn.Linear(self.embed_dim, self.num_classes)
        net = torch.nn.Sequential(self.body_, self.head_)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(self.seed)
        net.train()
        for _ in range(self.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), 128):
                b = perm[start:start + 128]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x[b]), y[b]).backward()
                opt.step()
        net.eval()
        return self

    def _features(self, inputs: np.ndarray):
        import torch

        out = []
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
            for start in range(0, len(x), 8192):
                out.append(self.body_((x[start:start + 8192] - self.mean_) / self.std_))
        return torch.cat(out) if out else torch.zeros((0, self.embed_dim))

    def embed(self, inputs: np.ndarray) -> np.ndarray:
        return self._features(inputs).numpy().astype(np.float32)

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.head_(self._features(inputs))
            return torch.softmax(logits, dim=1).numpy().astype(np.float32)


class DigitCNN(_TorchModel):
    """Two 3x3 convolutions and a dense embedding layer over 8x8 grey images (64 inputs)."""

    def __init__(self, num_classes: int = 10, embed_dim: int = 64, epochs: int = 15, seed: int = 0):
        super().__init__(num_classes, embed_dim, epochs, seed)

    def _body(self, in_dim: int):
        import torch.nn as nn

        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 16, self.embed_dim), nn.ReLU())


class MLP(_TorchModel):
    """One hidden layer (the embedding) over tabular features or precomputed features."""

    def __init__(self, num_classes: int, embed_dim: int = 32, epochs: int = 30, seed: int = 0):
        super().__init__(num_classes, embed_dim, epochs, seed)

    def _body(self, in_dim: int):
        import torch.nn as nn

        return nn.Sequential(nn.Linear(in_dim, self.embed_dim), nn.ReLU())


class FeatureHead(MLP):
    """An MLP head on fixed backbone features; the embedding is the backbone's features.

    How the project's own scenario works: the synthetic families' inputs are
    already the backbone's embeddings, and only the head is retrained.
    """

    def __init__(self, num_classes: int, hidden: int = 64, epochs: int = 20, seed: int = 0):
        super().__init__(num_classes, hidden, epochs, seed)

    def embed(self, inputs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(inputs, dtype=np.float32)
