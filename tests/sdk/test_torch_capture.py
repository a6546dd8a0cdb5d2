"""blindspots.torch_capture against a real server: a small CNN on images made here."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

from blindspots.torch_capture import capture, log_model_predictions, penultimate_layer  # noqa: E402
from blindspots_server.storage.rows import to_row_data  # noqa: E402

CLASSES = ["red", "green", "blue"]
N = 96


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.hidden = nn.Linear(8, 16)
        self.head = nn.Linear(16, len(CLASSES))

    def forward(self, x):
        return self.head(torch.relu(self.hidden(self.features(x).flatten(1))))


def make_images(n: int = N, seed: int = 0):
    """Images whose dominant channel is the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    images = torch.rand(n, 3, 16, 16, generator=g) * 0.3
    images[torch.arange(n), labels] += 0.7
    return images, labels


class DictImages(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "id": f"img-{i:03d}",
                "uri": f"/data/img-{i:03d}.png",
                "metadata": {"camera": f"cam_{i % 2}", "brightness": float(self.images[i].mean())}}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SmallCNN().eval()


def expected(model, images):
    with torch.no_grad():
        hidden = torch.relu(model.hidden(model.features(images).flatten(1)))
        return torch.softmax(model.head(hidden), 1).numpy(), hidden.numpy()


def test_penultimate_is_the_last_linear(model):
    assert penultimate_layer(model) == "head"
    with pytest.raises(ValueError, match="no nn.Linear"):
        penultimate_layer(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_dict_batches_stream_everything_to_a_run(client, server, model):
    images, labels = make_images()
    run = client.create_run("cnn-eval", class_names=CLASSES, embedding_dim=16)
    model.train()          # the helper evaluates in eval mode and restores the mode afterwards
    summary = log_model_predictions(run, model, DataLoader(DictImages(images, labels), batch_size=20),
                                    chunk_rows=40)
    assert model.training
    assert summary.rows_stored == N and summary.total_rows == N
    rows = to_row_data(server.store.read_rows("run", run.id))
    model.eval()
    probs, hidden = expected(model, images)
    assert list(rows.sample_ids) == [f"img-{i:03d}" for i in range(N)]
    assert rows.labels.tolist() == labels.tolist()
    np.testing.assert_allclose(rows.embeddings, hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows.probabilities, probs, rtol=1e-5, atol=1e-6)
    assert rows.uris[5] == "/data/img-005.png"
    assert rows.metadata["camera"].tolist()[:3] == ["cam_0", "cam_1", "cam_0"]
    np.testing.assert_allclose(rows.metadata["brightness"].to_numpy(), images.mean((1, 2, 3)).numpy(), rtol=1e-5)
    # Logging the same loader again is recognised as duplicate batches.
    again = log_model_predictions(run, model, DataLoader(DictImages(images, labels), batch_size=20), chunk_rows=40)
    assert again.rows_stored == 0 and again.total_rows == N


def test_tuple_batches_named_layer_and_generated_ids(model):
    images, labels = make_images(40)
    got = capture(model, DataLoader(TensorDataset(images, labels), batch_size=16), layer="features",
                  id_prefix="row-")
    assert got.sample_ids[:2] == ["row-0", "row-1"] and len(got) == 40
    assert got.embeddings.shape == (40, 8)      # AdaptiveAvgPool output N x 8 x 1 x 1, flattened
    with torch.no_grad():
        np.testing.assert_allclose(got.embeddings, model.features(images).flatten(1).numpy(), rtol=1e-5, atol=1e-6)
    assert got.uris is None and got.metadata is None
    assert got.labels.tolist() == labels.tolist()


def test_pool_gets_probabilities_only_when_it_has_classes(client, server, model):
    images, _ = make_images(30)
    loader = DataLoader(images, batch_size=8)            # bare tensors: a pool without labels
    with_probs = client.create_pool("pool-k", embedding_dim=16, num_classes=len(CLASSES))
    log_model_predictions(with_probs, model, loader, id_prefix="p-")
    plain = client.create_pool("pool-plain", embedding_dim=16)
    log_model_predictions(plain, model, loader, id_prefix="p-")
    a = to_row_data(server.store.read_rows("pool", with_probs.id))
    b = to_row_data(server.store.read_rows("pool", plain.id))
    assert a.probabilities is not None and a.probabilities.shape == (30, 3)
    assert b.probabilities is None or len(b.probabilities) == 0 or np.isnan(b.probabilities).all()
    np.testing.assert_allclose(a.embeddings, b.embeddings)


def test_mistakes_are_named(client, model):
    images, labels = make_images(12)
    run = client.create_run("wrong-dim", class_names=CLASSES, embedding_dim=32)
    with pytest.raises(ValueError, match="16 dimensions but run .* expects 32"):
        log_model_predictions(run, model, DataLoader(TensorDataset(images, labels), batch_size=4))
    run16 = client.create_run("no-labels", class_names=CLASSES, embedding_dim=16)
    with pytest.raises(ValueError, match="a run needs labels"):
        log_model_predictions(run16, model, DataLoader(images, batch_size=4))
    with pytest.raises(ValueError, match="batch_fn"):
        capture(model, [(images, labels, ["a"] * 12, "extra")])
    with pytest.raises(ValueError, match="not a module"):
        capture(model, [images], layer="nope")
    batch_fn_rows = capture(model, [{"pixels": images}], batch_fn=lambda b: {"inputs": b["pixels"]})
    assert len(batch_fn_rows) == 12


def _torchvision_or_skip():
    try:
        import torchvision
    except ImportError:
        pytest.skip("torchvision is not installed: PyPI's torchvision 0.28.0 (the release paired with torch "
                    "2.13.0) is a CUDA build whose torchvision/_C.so links libtorch_cuda.so and libc10_cuda.so, "
                    "absent from this CPU torch; importing it fails with 'operator torchvision::nms does not exist'")
    except Exception as exc:   # the CUDA/CPU mismatch raises RuntimeError at import
        pytest.skip(f"torchvision does not import beside this torch build: {exc}")
    return torchvision


def test_torchvision_resnet18_without_weights(client):
    tv = _torchvision_or_skip()
    model = tv.models.resnet18(weights=None, num_classes=3).eval()
    images, labels = make_images(8)
    images = torch.nn.functional.interpolate(images, size=64)
    run = client.create_run("resnet18", class_names=CLASSES, embedding_dim=512)
    summary = log_model_predictions(run, model, DataLoader(TensorDataset(images, labels), batch_size=4))
    assert penultimate_layer(model) == "fc" and summary.total_rows == 8
