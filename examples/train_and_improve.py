"""Train a model, find where it fails, label what fixes it, retrain: the loop to copy.

    python examples/train_and_improve.py                      # starts its own server
    python examples/train_and_improve.py --address host:50051 --report report.html

A plain PyTorch script on the synthetic listings scenario (each input is a
128-d photo feature vector; five property types). Only the marked lines talk
to blindspots; everything else is an ordinary training loop. The scenario's
oracle plays the annotator: it knows the true labels of the pool rows.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from blindspots import Client
from blindspots.report import write_report
from blindspots.torch_capture import log_model_predictions

from blindspots_scenarios.listings import Split, make_scenario


class Listings(Dataset):
    """One split as dict samples: the batch format blindspots.torch_capture reads."""

    def __init__(self, split: Split, labels: Optional[np.ndarray] = None):
        self.x = torch.from_numpy(np.ascontiguousarray(split.embeddings, dtype=np.float32))
        self.y = torch.from_numpy(np.asarray(split.labels if labels is None else labels, dtype=np.int64))
        self.ids, self.uris = split.ids, split.uris
        self.meta = split.metadata[["region", "camera", "price"]].to_dict("records")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"inputs": self.x[i], "labels": self.y[i], "ids": str(self.ids[i]), "uris": str(self.uris[i]),
                "metadata": self.meta[i]}


class Standardize(nn.Module):
    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", x.mean(0, keepdim=True))
        self.register_buffer("std", x.std(0, keepdim=True) + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_model(train: Listings, num_classes: int, hidden: int = 64) -> nn.Module:
    # The input of the last Linear (hidden-d) is the embedding blindspots captures by default.
    return nn.Sequential(Standardize(train.x), nn.Linear(train.x.shape[1], hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def train(data: Listings, num_classes: int, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = make_model(data, num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loader = DataLoader(data, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(seed))
    model.train()
    for _ in range(epochs):
        for batch in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(batch["inputs"]), batch["labels"]).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, mask: Optional[np.ndarray] = None) -> float:
    pred = model(torch.from_numpy(split.embeddings)).argmax(1).numpy()
    right = pred == split.true_labels
    return float(right[mask].mean() if mask is not None else right.mean())


def main(argv: Optional[list[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--address", help="a running server; default: start one on a temporary store")
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--n-pool", type=int, default=40000)
    p.add_argument("--budget", type=int, default=600, help="pool rows to label")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", help="also write the HTML report of the first model's diagnosis here")
    p.add_argument("--images", help="render a small PNG per test/pool row into this folder (report thumbnails)")
    args = p.parse_args(argv)

    s = make_scenario(n_train=args.n_train, n_test=args.n_test, n_pool=args.n_pool, seed=args.seed)
    if args.images:
        from blindspots_scenarios.listings_images import attach_images
        attach_images(s, args.images)
    k = len(s.class_names)
    failing = s.test.in_data_gap
    train_set = Listings(s.train)
    model = train(train_set, k, args.epochs, args.seed)
    before = {"overall": accuracy(model, s.test), "failing_slices": accuracy(model, s.test, failing)}
    print(f"model v1: test accuracy {before['overall']:.1%}, on the planted failing slices "
          f"{before['failing_slices']:.1%}")

    with ExitStack() as stack:
        address = args.address
        if not address:
            from blindspots_server.config import ServerConfig
            from blindspots_server.server.app import BlindspotsServer
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="blindspots-example-"))
            server = BlindspotsServer(ServerConfig(data_dir=data_dir, host="127.0.0.1", port=0)).start()
            stack.callback(server.stop)
            address = f"127.0.0.1:{server.port}"
        client = stack.enter_context(Client(address))

        # --- blindspots: log the test predictions and the unlabeled pool -------------------------
        hidden = model[-1].in_features
        run = client.create_run("listings-v1-test", class_names=s.class_names, embedding_dim=hidden,
                                model_name="listings-mlp", model_version="v1", dataset_name="listings-test")
        log_model_predictions(run, model, DataLoader(Listings(s.test), batch_size=512))
        pool = client.create_pool("listings-unlabeled", embedding_dim=hidden, num_classes=k)
        log_model_predictions(pool, model, DataLoader(Listings(s.pool), batch_size=512))

        # --- blindspots: where does it fail, and what should we label? -------------------------
        diagnosis = run.diagnose(progress=False)
        print(diagnosis.summary(max_regions=5))
        picks = run.suggest(pool, budget=args.budget, progress=False)
        print(f"labeling {len(picks)} suggested pool rows")
        if args.report:
            write_report(client, run.id, args.report, suggestions=picks)
            print(f"report written to {args.report}")

        # The annotator: the scenario knows the pool's true labels.
        idx = np.flatnonzero(np.isin(s.pool.ids, picks["sample_id"].to_numpy()))
        added = s.pool.subset(idx)
        added.labels = added.true_labels
        model2 = train(Listings(s.train.concat(added)), k, args.epochs, args.seed)
        after = {"overall": accuracy(model2, s.test), "failing_slices": accuracy(model2, s.test, failing)}
        print(f"model v2 (+{len(idx)} labeled rows): test accuracy {after['overall']:.1%} "
              f"(was {before['overall']:.1%}), on the planted failing slices {after['failing_slices']:.1%} "
              f"(was {before['failing_slices']:.1%})")

        # --- blindspots: check the new model the same way ----------------------------------------
        run2 = client.create_run("listings-v2-test", class_names=s.class_names, embedding_dim=hidden,
                                 model_name="listings-mlp", model_version="v2", dataset_name="listings-test")
        log_model_predictions(run2, model2, DataLoader(Listings(s.test), batch_size=512))
        diagnosis2 = run2.diagnose(progress=False)
        print(f"failure regions: {len(diagnosis.regions)} for v1, {len(diagnosis2.regions)} for v2; error rate "
              f"{diagnosis.baseline_error_rate:.1%} -> {diagnosis2.baseline_error_rate:.1%} (on the given labels)")
    return {"before": before, "after": after, "labeled": int(len(idx)), "run_v1": run.id, "run_v2": run2.id,
            "regions_v1": len(diagnosis.regions), "regions_v2": len(diagnosis2.regions)}


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
