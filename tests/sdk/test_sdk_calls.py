"""The SDK's calling conventions (issue 13, SDK points b and c): runs and pools take their
arrays in one order, by keyword in both; the older positional form still works with a
DeprecationWarning; an unknown diagnose parameter is a clear error naming it. Real server."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from blindspots import InvalidArgumentError, InvalidParameterError

DIM = 4


def _arrays(n=12, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, n)
    return [f"s{i}" for i in range(n)], rng.normal(size=(n, DIM)), rng.integers(0, 2, n), np.stack([p, 1 - p], 1)


def test_runs_and_pools_take_arrays_in_one_order(client, server):
    ids, emb, labels, probs = _arrays()
    run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
    pool = client.create_pool("p", embedding_dim=DIM, num_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the new forms warn about nothing
        assert run.log_predictions(ids[:6], emb[:6], labels=labels[:6], probabilities=probs[:6],
                                   progress=False).rows_stored == 6
        assert run.log_predictions(ids[6:], embeddings=emb[6:], labels=labels[6:], probabilities=probs[6:],
                                   progress=False).rows_stored == 6
        assert pool.add(ids, emb, probabilities=probs, progress=False).rows_stored == 12
        assert pool.add([f"q{i}" for i in range(3)], embeddings=emb[:3], probabilities=probs[:3],
                        progress=False).rows_stored == 3
    stored = server.store.read_rows("run", run.id)
    assert stored.column("label").to_pylist() == labels.tolist()
    np.testing.assert_allclose(np.stack(stored.column("embedding").to_numpy(zero_copy_only=False)), emb, rtol=1e-6)


def test_the_older_positional_form_still_works_and_warns(client, server):
    ids, emb, labels, probs = _arrays()
    old = client.create_run("old", class_names=["a", "b"], embedding_dim=DIM)
    with pytest.warns(DeprecationWarning, match=r"log_predictions\(ids, embeddings, labels=\.\.\."):
        assert old.log_predictions(ids, labels, probs, emb, progress=False).rows_stored == 12
    new = client.create_run("new", class_names=["a", "b"], embedding_dim=DIM)
    new.log_predictions(ids, emb, labels=labels, probabilities=probs, progress=False)
    assert server.store.read_rows("run", old.id).equals(server.store.read_rows("run", new.id))
    with pytest.raises(TypeError, match="2 positional arrays"):
        new.log_predictions(ids, emb, labels, progress=False)
    with pytest.raises(TypeError, match="needs labels, probabilities"):
        new.log_predictions(ids, emb, progress=False)
    with pytest.raises(TypeError, match="multiple values for argument 'embeddings'"):
        new.log_predictions(ids, emb, embeddings=emb, labels=labels, probabilities=probs, progress=False)


def test_an_unknown_diagnose_parameter_names_it_and_the_valid_ones(client):
    ids, emb, labels, probs = _arrays()
    run = client.create_run("r", class_names=["a", "b"], embedding_dim=DIM)
    run.log_predictions(ids, emb, labels=labels, probabilities=probs, progress=False)
    with pytest.raises(InvalidParameterError, match=r"unknown parameter 'min_cluster' \(did you mean "
                                                    r"'min_cluster_size'\?\); valid parameters: .*fdr_alpha"):
        run.diagnose(min_cluster=5, progress=False)
    with pytest.raises(InvalidParameterError, match=r"parameter 'fdr_alpha' cannot be 'low'"):
        run.diagnose(fdr_alpha="low", progress=False)
    assert isinstance(InvalidParameterError("x"), ValueError)
    assert client.stub is not None and run.diagnose(min_cluster_size=5, progress=False).message.num_samples == 12


def test_no_rows_is_an_error_naming_the_argument_before_any_call(client):
    run = client.create_run("empty", class_names=["a", "b"], embedding_dim=DIM)
    pool = client.create_pool("empty", embedding_dim=DIM)
    with pytest.raises(ValueError, match="sample_ids is empty"):
        run.log_predictions([], np.zeros((0, DIM)), labels=[], probabilities=np.zeros((0, 2)), progress=False)
    with pytest.raises(ValueError, match="sample_ids is empty"):
        pool.add([], np.zeros((0, DIM)), progress=False)
    assert client.get_run(run.id).message.num_rows == 0


def test_metadata_comes_as_a_frame_a_mapping_or_a_table_and_keeps_its_types(client, server):
    """What pipelines hold metadata in: a DataFrame (any index), a dict of columns, a pyarrow table;
    nullable, boolean, categorical, time-zoned and duration columns arrive with the values they mean."""
    import pandas as pd
    import pyarrow as pa

    ids, emb, labels, probs = _arrays(n=4)
    columns = {
        "count": pd.array([1, None, 3, 4], dtype="Int64"),
        "flagged": pd.array([True, None, False, True], dtype="boolean"),
        "camera": pd.Categorical(["a", None, "b", "a"]),
        "seen": pd.to_datetime(["2026-03-01 12:00", None, "2026-03-02 00:30", "2026-03-03 00:00"]).tz_localize(
            "Europe/Berlin"),
        "exposure": pd.to_timedelta([1.5, None, 60, 3600], unit="s"),
    }
    want = {"count": [1.0, None, 3.0, 4.0], "flagged": [1.0, None, 0.0, 1.0], "camera": ["a", None, "b", "a"],
            "seen": [pd.Timestamp("2026-03-01 11:00"), None, pd.Timestamp("2026-03-01 23:30"),
                     pd.Timestamp("2026-03-02 23:00")],
            "exposure": [1.5, None, 60.0, 3600.0]}
    types = {"count": "number", "flagged": "number", "camera": "string", "seen": "timestamp",
             "exposure": "number"}
    forms = {"mapping": columns, "frame": pd.DataFrame(columns, index=[10, 11, 12, 13]),
             "table": pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)}
    for name, metadata in forms.items():
        run = client.create_run(f"meta-{name}", class_names=["a", "b"], embedding_dim=DIM)
        run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=metadata, progress=False)
        stored = server.store.read_rows("run", run.id)
        assert server.store.get_run(run.id).metadata_schema == types, name
        for column, values in want.items():
            got = [None if v is None or v != v else v for v in stored.column(f"m.{column}").to_pylist()]
            assert got == values, (name, column, got)


def test_metadata_of_the_wrong_shape_or_kind_is_an_error_naming_it(client):
    ids, emb, labels, probs = _arrays(n=4)
    run = client.create_run("meta-bad", class_names=["a", "b"], embedding_dim=DIM)
    for metadata, error, words in (({"site": ["a", "b"]}, ValueError, "'site' has 2 values but sample_ids has 4"),
                                   ({"site": "north"}, ValueError, "'site' has a single value"),
                                   ([("site", "a")] * 4, TypeError, "metadata must be"),
                                   (np.zeros((4, 2)), TypeError, "got ndarray")):
        with pytest.raises(error, match=words):
            run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=metadata, progress=False)
    assert client.get_run(run.id).message.num_rows == 0


def test_labels_may_be_class_names_and_fractions_or_unknown_names_are_errors(client, server):
    ids, emb, labels, probs = _arrays(n=6)
    run = client.create_run("names", class_names=["cat", "dog"], embedding_dim=DIM)
    names = np.array(["cat", "dog"])[labels]
    run.log_predictions(ids[:3], emb[:3], labels=list(names[:3]), probabilities=probs[:3], progress=False)
    import pandas as pd
    run.log_predictions(ids[3:], emb[3:], labels=pd.Categorical(names[3:]), probabilities=probs[3:], progress=False)
    assert server.store.read_rows("run", run.id).column("label").to_pylist() == labels.tolist()
    other = client.create_run("bad-labels", class_names=["cat", "dog"], embedding_dim=DIM)
    for bad, words in ((["cat", "cow", "dog", "emu", "cat", "cat"], r"2 name\(s\) are not among .*'cow', 'emu'"),
                       ([0, 1, 0.5, 1, 0, 1], "got 0.5 at row 2"), ([0, 1, np.nan, 1, 0, 1], "got nan at row 2")):
        with pytest.raises(ValueError, match=words):
            other.log_predictions(ids, emb, labels=bad, probabilities=probs, progress=False)
    other.log_predictions(ids, emb, labels=labels.astype(float), probabilities=probs, progress=False)
    assert server.store.read_rows("run", other.id).column("label").to_pylist() == labels.tolist()


def test_torch_tensors_go_in_as_they_come_out_of_a_model(client, server):
    """Embeddings and probabilities straight from a forward pass (still needing grad) and labels
    as a tensor: no .detach().numpy() by hand."""
    torch = pytest.importorskip("torch")
    ids, emb, labels, probs = _arrays(n=5)
    layer = torch.nn.Linear(DIM, DIM)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(DIM))
        layer.bias.zero_()
    out = layer(torch.tensor(emb, dtype=torch.float32))
    assert out.requires_grad
    logits = torch.log(torch.tensor(probs, dtype=torch.float32)).requires_grad_()
    run = client.create_run("tensors", class_names=["a", "b"], embedding_dim=DIM)
    run.log_predictions(ids, out, labels=torch.tensor(labels), probabilities=logits, logits=True, progress=False)
    stored = server.store.read_rows("run", run.id)
    np.testing.assert_allclose(np.stack(stored.column("embedding").to_numpy(zero_copy_only=False)), emb, rtol=1e-6)
    np.testing.assert_allclose(np.stack(stored.column("probabilities").to_numpy(zero_copy_only=False)), probs,
                               rtol=1e-5)
    assert stored.column("label").to_pylist() == labels.tolist()


def test_mixed_precision_tensors_go_in_as_float32(client, server):
    """bfloat16 and float16 outputs (a forward pass under autocast), which numpy has no type for
    or holds as half, are stored as float32 of the same values; probabilities whose rounding moved
    their rows' sums off 1 are scaled back to 1, while a row that is not a distribution is still
    refused, naming the field."""
    torch = pytest.importorskip("torch")
    ids, emb, labels, _ = _arrays(n=64)
    probs = np.random.default_rng(4).dirichlet(np.full(2, 0.3), size=64)
    for dtype in (torch.bfloat16, torch.float16):
        out, p = torch.tensor(emb).to(dtype), torch.tensor(probs).to(dtype)
        off = np.abs(p.float().sum(dim=1).numpy() - 1.0).max()
        assert off > (1e-3 if dtype == torch.bfloat16 else 0)      # what the server alone would refuse (bf16)
        run = client.create_run(f"mixed-{dtype}", class_names=["a", "b"], embedding_dim=DIM)
        run.log_predictions(ids, out.requires_grad_(), labels=labels, probabilities=p, progress=False)
        stored = server.store.read_rows("run", run.id)
        np.testing.assert_array_equal(np.stack(stored.column("embedding").to_numpy(zero_copy_only=False)),
                                      out.float().detach().numpy())
        got = np.stack(stored.column("probabilities").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(got, p.float().numpy(), atol=2 * off + 1e-6)
        wrong = p.clone()
        wrong[3] = torch.tensor([0.9, 0.3], dtype=dtype)                # sums to 1.2: not rounding
        with pytest.raises(InvalidArgumentError, match=r"probabilities: row 3 sums to 1\.(19|20)"):
            client.create_run(f"wrong-{dtype}", class_names=["a", "b"], embedding_dim=DIM).log_predictions(
                ids, out, labels=labels, probabilities=wrong, progress=False)
