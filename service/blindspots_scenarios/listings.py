"""A synthetic listings-like scenario with planted failure conditions.

Used by the demo, the tests and the benchmarks. Each sample is a property
listing photo classified into a property type. A fixed random "backbone" maps a
latent feature vector to a 128-d embedding; the model is a small torch MLP head
trained on embeddings. Planted conditions:

- ``north_cam_e``: region=north & camera=cam_e. The class signal is permuted and
  shifted, and the condition is rare in training: a data gap tied to metadata.
- ``luxury``: price in the top ~6%: a data gap tied to one numeric column.
- ``dark``: photos taken in the dark (hidden, not in the metadata): a data gap
  visible only in embeddings.
- ``watermark``: watermarked photos (hidden) whose test labels were flipped for
  40% of rows by a careless annotator: label noise, the model is right.

The train split under-represents the data-gap conditions (100x rarer); test
and pool splits have them at their natural rates, so adding well-chosen pool
samples with their true labels and retraining fixes the failures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CLASS_NAMES = ["apartment", "house", "studio", "villa", "loft"]
REGIONS = ["north", "south", "east", "west", "central"]
CAMERAS = ["cam_a", "cam_b", "cam_c", "cam_d", "cam_e"]

LATENT_DIM = 24
NOISE_FLIP_RATE = 0.4


@dataclass(frozen=True)
class PlantedCondition:
    name: str
    kind: str            # "data_gap" | "label_noise"
    slice: str           # the metadata slice that describes it, "" if hidden


PLANTED = (
    PlantedCondition("north_cam_e", "data_gap", "camera=cam_e & region=north"),
    PlantedCondition("luxury", "data_gap", "price in the top 6%"),
    PlantedCondition("dark", "data_gap", ""),
    PlantedCondition("watermark", "label_noise", ""),
)
DATA_GAPS = tuple(c.name for c in PLANTED if c.kind == "data_gap")


@dataclass
class Split:
    """One set of samples. ``labels`` are the given labels (noisy in test);
    ``true_labels`` the clean ones (for pools: hidden from blindspots)."""

    ids: np.ndarray               # str
    labels: np.ndarray            # int64
    true_labels: np.ndarray       # int64
    embeddings: np.ndarray        # float32 N x D
    metadata: pd.DataFrame        # region, camera, price, listed_at
    uris: np.ndarray              # str
    conditions: pd.DataFrame      # bool column per planted condition

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def in_data_gap(self) -> np.ndarray:
        """Bool per row: inside any planted data-gap condition (the failing slices)."""
        return self.conditions[list(DATA_GAPS)].to_numpy().any(axis=1)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split(
            ids=self.ids[idx], labels=self.labels[idx], true_labels=self.true_labels[idx],
            embeddings=self.embeddings[idx], metadata=self.metadata.iloc[idx].reset_index(drop=True),
            uris=self.uris[idx], conditions=self.conditions.iloc[idx].reset_index(drop=True))

    def concat(self, other: "Split") -> "Split":
        return Split(
            ids=np.concatenate([self.ids, other.ids]),
            labels=np.concatenate([self.labels, other.labels]),
            true_labels=np.concatenate([self.true_labels, other.true_labels]),
            embeddings=np.concatenate([self.embeddings, other.embeddings]),
            metadata=pd.concat([self.metadata, other.metadata], ignore_index=True),
            uris=np.concatenate([self.uris, other.uris]),
            conditions=pd.concat([self.conditions, other.conditions], ignore_index=True))


@dataclass
class Scenario:
    class_names: list[str]
    train: Split
    test: Split
    pool: Split
    planted: tuple[PlantedCondition, ...]
    seed: int


class _World:
    """The fixed generative process: class means, condition offsets, backbone."""

    def __init__(self, seed: int, dim: int):
        rng = np.random.default_rng(seed)
        c = len(CLASS_NAMES)
        self.dim = dim
        self.class_means = rng.normal(0, 1, (c, LATENT_DIM)) * 1.6
        self.offsets = {name: _unit(rng.normal(0, 1, LATENT_DIM)) * 7.0 for name in
                        ("north_cam_e", "luxury", "dark", "watermark")}
        # Each data gap scrambles the class signal differently (a permutation).
        self.perms = {name: np.roll(np.arange(c), shift) for name, shift in
                      (("north_cam_e", 1), ("luxury", 2), ("dark", 3))}
        self.backbone = rng.normal(0, 1, (LATENT_DIM, dim)) / np.sqrt(LATENT_DIM)
        self.price_cut = 1_150_000.0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _generate(world: _World, n: int, rng: np.random.Generator, prefix: str,
              gap_rate_scale: float, noisy_labels: bool) -> Split:
    c = len(CLASS_NAMES)
    labels = rng.integers(0, c, n)
    region = rng.choice(REGIONS, n, p=[0.2, 0.25, 0.2, 0.2, 0.15])
    camera = rng.choice(CAMERAS, n, p=[0.25, 0.2, 0.2, 0.15, 0.2])
    # Log-normal prices; villas and houses cost more.
    base = np.array([380e3, 520e3, 250e3, 900e3, 450e3])[labels]
    price = base * np.exp(rng.normal(0, 0.35, n))
    start = np.datetime64("2025-01-01T00:00:00")
    listed_at = start + (rng.uniform(0, 365 * 24 * 3600, n)).astype("timedelta64[s]")
    dark = rng.random(n) < 0.07
    watermark = (rng.random(n) < 0.06) & ~dark

    north_cam_e = (region == "north") & (camera == "cam_e")
    luxury = price > world.price_cut
    if gap_rate_scale < 1.0:
        # Training data under-represents the gaps: drop most of them by resampling.
        gaps = north_cam_e | luxury | dark
        keep = ~gaps | (rng.random(n) < gap_rate_scale)
        idx = np.flatnonzero(keep)
        labels, region, camera, price, listed_at, dark, watermark = (
            a[idx] for a in (labels, region, camera, price, listed_at, dark, watermark))
        north_cam_e, luxury = north_cam_e[idx], luxury[idx]
        n = len(idx)

    # Latent features: the class mean the image "looks like", shifted per condition.
    shown = labels.copy()
    latent = np.zeros((n, LATENT_DIM))
    for name, mask in (("north_cam_e", north_cam_e), ("luxury", luxury & ~north_cam_e),
                       ("dark", dark & ~north_cam_e & ~luxury)):
        shown[mask] = world.perms[name][labels[mask]]
        latent[mask] += world.offsets[name]
    latent[watermark] += world.offsets["watermark"]
    latent += world.class_means[shown] + rng.normal(0, 1.5, (n, LATENT_DIM))
    emb = latent @ world.backbone + rng.normal(0, 0.05, (n, world.dim))

    given = labels.copy()
    if noisy_labels:
        flip = watermark & (rng.random(n) < NOISE_FLIP_RATE)
        given[flip] = (labels[flip] + rng.integers(1, c, flip.sum())) % c

    ids = np.array([f"{prefix}-{i:07d}" for i in range(n)])
    return Split(
        ids=ids,
        labels=given.astype(np.int64),
        true_labels=labels.astype(np.int64),
        embeddings=emb.astype(np.float32),
        metadata=pd.DataFrame({"region": region, "camera": camera, "price": price.round(-2),
                               "listed_at": listed_at.astype("datetime64[us]")}),
        uris=np.array([f"synthetic://{prefix}/{i}.png" for i in range(n)]),
        conditions=pd.DataFrame({"north_cam_e": north_cam_e, "luxury": luxury,
                                 "dark": dark, "watermark": watermark}),
    )


def make_scenario(n_train: int = 8000, n_test: int = 10000, n_pool: int = 40000,
                  seed: int = 0, dim: int = 128, world_seed: int = 7) -> Scenario:
    """Build train/test/pool splits of the listings scenario.

    ``world_seed`` fixes the generative process (shared across seeds so results
    are comparable); ``seed`` draws the samples.
    """
    world = _World(world_seed, dim)
    rng = np.random.default_rng(seed)
    train = _generate(world, int(n_train * 1.25), rng, "train", gap_rate_scale=0.01, noisy_labels=False)
    train = train.subset(np.arange(min(n_train, len(train))))
    test = _generate(world, n_test, rng, "test", gap_rate_scale=1.0, noisy_labels=True)
    pool = _generate(world, n_pool, rng, "pool", gap_rate_scale=1.0, noisy_labels=False)
    return Scenario(class_names=list(CLASS_NAMES), train=train, test=test, pool=pool,
                    planted=PLANTED, seed=seed)


class ListingsModel:
    """A small MLP head on the embeddings, trained with torch on the CPU."""

    def __init__(self, num_classes: int, hidden: int = 64, epochs: int = 40, seed: int = 0):
        self.num_classes = num_classes
        self.hidden = hidden
        self.epochs = epochs
        self.seed = seed
        self.net_ = None

    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> "ListingsModel":
        import torch

        torch.manual_seed(self.seed)
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.mean_ = x.mean(0, keepdim=True)
        self.std_ = x.std(0, keepdim=True) + 1e-6
        x = (x - self.mean_) / self.std_
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], self.hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(self.hidden, self.num_classes))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), 256):
                b = perm[start:start + 256]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(x[b]), y[b])
                loss.backward()
                opt.step()
        self.net_ = net.eval()
        return self

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
            logits = self.net_((x - self.mean_) / self.std_)
            return torch.softmax(logits, dim=1).numpy().astype(np.float32)


def train_model(split: Split, num_classes: int = len(CLASS_NAMES), seed: int = 0,
                epochs: int = 40) -> ListingsModel:
    """Train the scenario's model on a split's given labels."""
    return ListingsModel(num_classes, seed=seed, epochs=epochs).fit(split.embeddings, split.labels)
