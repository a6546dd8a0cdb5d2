"""Framework callbacks with real tiny models trained in the real frameworks, logging to a real server."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import start_server


def _rows(server, run):
    from blindspots_server.storage.rows import to_row_data
    return to_row_data(server.store.read_rows("run", run.id))


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


def test_lightning_callback_logs_versions_every_n_epochs_and_at_fit_end(tmp_path):
    try:
        import lightning.pytorch as pl
    except ImportError:
        pl = pytest.importorskip("pytorch_lightning", reason="pip install 'blindspots[lightning]'")
    from blindspots import Client
    from blindspots.integrations.lightning import BlindspotsCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_data(600, 1)), batch_size=64,
                                        shuffle=True)
    xv, yv = _data(400, 2)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=100)
    server = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    try:
        callback = BlindspotsCallback(client, ["a", "b", "c"], model_name="tiny", every_n_epochs=2,
                                      diagnose=True, project="lit")
        model = Tiny()
        trainer = pl.Trainer(max_epochs=5, callbacks=[callback], logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
        trainer.fit(model, train, val)
        # After 2 and 4 epochs (every second), then after all 5 at fit end; the sanity check logs nothing.
        assert [v.model_version for v in callback.logged_] == ["epoch2", "epoch4", "epoch5"]
        runs = client.list_runs("lit")
        assert [r.name for r in runs] == ["tiny-epoch2", "tiny-epoch4", "tiny-epoch5"]
        assert all(r.message.model_name == "tiny" and r.message.num_rows == 400 for r in runs)
        last = callback.logged_[-1]
        assert last.run.message.embedding_dim == 16 and last.diagnosis.message.num_samples == 400
        # What was logged is the trained model's output on the validation set.
        rows = _rows(server, last.run)
        model.eval()
        with torch.no_grad():
            probs = torch.softmax(model(xv), dim=1).numpy()
            hidden = model.net[1](model.net[0](xv)).numpy()
        assert rows.sample_ids.tolist() == [f"val-{i}" for i in range(400)]
        np.testing.assert_array_equal(rows.labels, yv.numpy())
        np.testing.assert_allclose(rows.probabilities, probs, atol=1e-5)
        np.testing.assert_allclose(rows.embeddings, hidden, atol=1e-5)
        # The earlier version differs: the model kept training after it.
        assert not np.allclose(_rows(server, callback.logged_[0].run).probabilities, probs, atol=1e-3)
    finally:
        client.close()
        server.stop()


def test_transformers_trainer_callback_logs_a_tiny_bert(tmp_path):
    transformers = pytest.importorskip("transformers", reason="pip install 'blindspots[transformers]'")
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
    from blindspots import Client
    from blindspots.integrations.huggingface import BlindspotsTrainerCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)

    def examples(n: int, seed: int) -> list[dict]:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(5, 40, (n, 12), generator=g)
        labels = (ids[:, :6] < 20).sum(dim=1) > 3          # many low tokens up front: class 1
        return [{"input_ids": ids[i], "attention_mask": torch.ones(12, dtype=torch.long),
                 "labels": int(labels[i])} for i in range(n)]

    train, val = examples(256, 1), examples(96, 2)
    server = start_server(tmp_path / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=120)
    try:
        callback = BlindspotsTrainerCallback(client, ["neg", "pos"], model_name="bert-tiny", model_version="v2",
                                             project="hf")
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=32,
            per_device_eval_batch_size=32, eval_strategy="epoch", save_strategy="no", logging_strategy="no",
            report_to=[], use_cpu=True, learning_rate=1e-3, disable_tqdm=True, seed=0)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                                       callbacks=[callback])
        trainer.train()
        steps = [8, 16]                                    # 256 / 32 per epoch
        assert [v.model_version for v in callback.logged_] == [f"v2-step{s}" for s in steps]
        runs = client.list_runs("hf")
        assert [r.name for r in runs] == [f"bert-tiny-v2-step{s}" for s in steps]
        assert all(r.message.num_rows == 96 and r.message.embedding_dim == 16 for r in runs)
        rows = _rows(server, runs[-1])
        model.eval()
        batch = {"input_ids": torch.stack([e["input_ids"] for e in val]),
                 "attention_mask": torch.stack([e["attention_mask"] for e in val])}
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
            pooled = model.bert(**batch).pooler_output
        np.testing.assert_allclose(rows.probabilities, torch.softmax(out.logits, dim=1).numpy(), atol=1e-5)
        np.testing.assert_allclose(rows.embeddings, pooled.numpy(), atol=1e-5)
        np.testing.assert_array_equal(rows.labels, [e["labels"] for e in val])
    finally:
        client.close()
        server.stop()
