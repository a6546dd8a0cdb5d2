"""Region members through the API on a run above the map's 20,000-row bound: paged
from a real server, matching the diagnosis's counts and the ingested rows."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from blindspots import Client
from blindspots.errors import InvalidArgumentError, NotFoundError
from blindspots.v1 import blindspots_pb2 as pb

from conftest import start_server

BIN = Path(sys.executable).parent / "blindspots"
N = 30_000


def _rows(n: int, seed: int, prefix: str = "s"):
    """Rows with three planted failure groups apart in embedding space, and metadata of
    every type with missing values."""
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({
        "camera": pd.Series(rng.choice(["cam_a", "cam_b", "cam_c"], n), dtype=object),
        "price": rng.lognormal(12, 0.4, n).round(-2),
        "listed_at": (np.datetime64("2024-01-01") + rng.integers(0, 700 * 86400, n).astype("timedelta64[s]"))
        .astype("datetime64[us]")})
    meta.loc[rng.random(n) < 0.02, "camera"] = None
    meta.loc[rng.random(n) < 0.02, "price"] = np.nan
    meta.loc[rng.random(n) < 0.02, "listed_at"] = pd.NaT
    labels = rng.integers(0, 3, n)
    emb = rng.normal(0, 4, (3, 16))[labels] + rng.normal(0, 1, (n, 16))
    group = rng.choice(4, n, p=[0.9, 0.04, 0.03, 0.03])          # 0: no planted group
    for g in (1, 2, 3):
        offset = rng.normal(0, 1, 16)
        emb[group == g] += 6 * offset / np.linalg.norm(offset)
    wrong = (rng.random(n) < 0.04) | ((group > 0) & (rng.random(n) < 0.8))
    predicted = np.where(wrong, (labels + rng.integers(1, 3, n)) % 3, labels)
    probs = np.full((n, 3), 0.1, dtype=np.float32)
    probs[np.arange(n), predicted] = 0.8
    ids = np.array([f"{prefix}{i:06d}" for i in range(n)])
    uris = np.array([f"file:///data/{prefix}{i}.png" for i in range(n)])
    return ids, labels, probs, emb.astype(np.float32), meta, uris


def _log(run, rows) -> None:
    ids, labels, probs, emb, meta, uris = rows
    run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=meta, uris=uris, progress=False)


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    server = start_server(root / "data")
    client = Client(f"127.0.0.1:{server.port}", retries=2, timeout=300)
    ids, labels, probs, emb, meta, uris = _rows(N, seed=5)
    run = client.create_run("big", class_names=["a", "b", "c"], embedding_dim=16)
    run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=meta, uris=uris, progress=False)
    diagnosis = run.diagnose(progress=False)
    # Rows that arrive after the diagnosis: never members of its regions.
    late = _rows(1500, seed=6, prefix="late")
    _log(run, late)
    yield {"root": root, "server": server, "client": client, "run": run, "diagnosis": diagnosis,
           "rows": (ids, labels, probs, meta, uris)}
    client.close()
    server.stop()


def test_every_region_pages_through_all_its_rows(diagnosed):
    diagnosis = diagnosed["diagnosis"]
    ids, labels, probs, meta, uris = diagnosed["rows"]
    assert diagnosis.message.num_samples == N and len(diagnosis.regions) >= 3
    assert sum(r.support for r in diagnosis.regions) > 1000
    seen = set()
    for region in diagnosis.regions:
        frame = diagnosis.region_members(region.id, page_size=700)
        # Exactly the diagnosis's counts, no row twice, no row of another region.
        assert len(frame) == region.support and int(frame["failed"].sum()) == region.failures
        assert frame["sample_id"].is_unique and not (set(frame["sample_id"]) & seen)
        seen |= set(frame["sample_id"])
        assert frame.attrs["num_rows_diagnosed"] == N and frame.attrs["num_rows_in_run"] == N + 1500
        assert (frame["row_index"] < N).all() and frame["row_index"].is_monotonic_increasing
        # Each row is the ingested row: ids, uris, labels, predictions and metadata.
        idx = frame["row_index"].to_numpy()
        assert frame["sample_id"].tolist() == ids[idx].tolist() and frame["uri"].tolist() == uris[idx].tolist()
        np.testing.assert_array_equal(frame["label"], labels[idx])
        np.testing.assert_array_equal(frame["predicted"], probs[idx].argmax(axis=1))
        np.testing.assert_allclose(frame["confidence"], probs[idx].max(axis=1), rtol=1e-6)
        expected = meta.iloc[idx].reset_index(drop=True)
        assert frame["camera"].fillna("<missing>").tolist() == expected["camera"].fillna("<missing>").tolist()
        assert frame["camera"].isna().sum() == expected["camera"].isna().sum()
        pd.testing.assert_frame_equal(frame[["price", "listed_at"]], expected[["price", "listed_at"]],
                                      check_dtype=False)
    assert len(seen) == sum(r.support for r in diagnosis.regions)


def test_pages_follow_their_tokens_and_bad_requests_name_the_field(diagnosed):
    client, diagnosis = diagnosed["client"], diagnosed["diagnosis"]
    region = diagnosis.regions[0]

    def page(**kw):
        req = pb.ListRegionMembersRequest(diagnosis_id=diagnosis.id, region_id=region.id, **kw)
        return client._unary(client.stub.ListRegionMembers, req)

    first = page(page_size=100)
    assert len(first.sample_ids) == 100 and first.total_size == region.support and first.next_page_token
    second = page(page_size=100, page_token=first.next_page_token)
    assert second.row_indices[0] > first.row_indices[-1]
    everything = page(page_size=10000)
    assert len(everything.sample_ids) == region.support and not everything.next_page_token

    other = diagnosis.regions[1].id
    bad = [(dict(diagnosis_id="diag_nope", region_id=0), NotFoundError, "diagnosis_id"),
           (dict(diagnosis_id=diagnosis.id, region_id=999), NotFoundError, "region_id"),
           (dict(diagnosis_id=diagnosis.id, region_id=-1), NotFoundError, "region_id"),
           (dict(diagnosis_id="", region_id=0), InvalidArgumentError, "diagnosis_id"),
           (dict(diagnosis_id=diagnosis.id, region_id=region.id, page_size=-1), InvalidArgumentError, "page_size"),
           (dict(diagnosis_id=diagnosis.id, region_id=region.id, page_size=10001), InvalidArgumentError,
            "page_size"),
           (dict(diagnosis_id=diagnosis.id, region_id=other, page_token=first.next_page_token),
            InvalidArgumentError, "page_token")]
    for token in ("1e30", "-5", "abc", "MTAwMDAwMDAwMDAwMDAwMDAwMDAw", "ÿÿ", first.next_page_token + "x",
                  str(10 ** 30)):
        bad.append((dict(diagnosis_id=diagnosis.id, region_id=region.id, page_token=token),
                    InvalidArgumentError, "page_token"))
    for fields, error, name in bad:
        with pytest.raises(error) as info:
            client._unary(client.stub.ListRegionMembers, pb.ListRegionMembersRequest(**fields))
        assert name in info.value.details, (fields, info.value.details)
    assert client.get_run(diagnosed["run"].id).message.num_rows == N + 1500      # the server is still up


def test_cli_exports_a_region(diagnosed, tmp_path):
    diagnosis, server = diagnosed["diagnosis"], diagnosed["server"]
    region = diagnosis.regions[-1]
    for name in ("members.parquet", "members.csv"):
        out = tmp_path / name
        done = subprocess.run([str(BIN), "region-members", diagnosed["run"].id, "--region", str(region.id),
                               "-o", str(out), "--address", f"127.0.0.1:{server.port}"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert f"{region.support} rows of region {region.id}" in done.stdout
        assert "1500 rows ingested after this diagnosis" in done.stdout
        frame = pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out)
        assert len(frame) == region.support and int(frame["failed"].sum()) == region.failures
        assert {"sample_id", "uri", "label", "predicted", "failed", "camera", "price", "listed_at"} <= set(frame)


def test_members_respect_the_access_policy(tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"token-team-a-0123456789": ["alpha"], "token-team-b-0123456789": ["beta"]}))
    server = start_server(tmp_path / "data", auth_tokens_file=str(tokens))
    try:
        with Client(f"127.0.0.1:{server.port}", token="token-team-a-0123456789", retries=0) as a, \
                Client(f"127.0.0.1:{server.port}", token="token-team-b-0123456789", retries=0) as b:
            run = a.create_run("a-run", class_names=["a", "b", "c"], embedding_dim=16, project="alpha")
            ids, labels, probs, emb, meta, uris = _rows(3000, seed=7)
            run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=meta, progress=False)
            diagnosis = run.diagnose(progress=False)
            assert diagnosis.regions
            assert len(a.region_members(diagnosis.id, diagnosis.regions[0].id)) == diagnosis.regions[0].support
            # Another team's diagnosis looks missing, with a missing id's message (no oracle).
            with pytest.raises(NotFoundError) as info:
                b.region_members(diagnosis.id, diagnosis.regions[0].id)
            assert info.value.details == f"diagnosis_id: diagnosis {diagnosis.id!r} not found"
    finally:
        server.stop()


def test_raw_stub_status_codes(diagnosed):
    """Through a bare gRPC stub too: codes, not INTERNAL."""
    from blindspots.v1 import blindspots_pb2_grpc as pb_grpc
    with grpc.insecure_channel(f"127.0.0.1:{diagnosed['server'].port}") as channel:
        stub = pb_grpc.BlindspotsStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListRegionMembers(pb.ListRegionMembersRequest(diagnosis_id=diagnosed["diagnosis"].id,
                                                               region_id=0, page_token="1e30"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rows_added_between_pages_change_nothing_in_the_region(server, client):
    ids, labels, probs, emb, meta, uris = _rows(4000, seed=8)
    run = client.create_run("growing", class_names=["a", "b", "c"], embedding_dim=16)
    run.log_predictions(ids, emb, labels=labels, probabilities=probs, metadata=meta, progress=False)
    diagnosis = run.diagnose(progress=False)
    region = max(diagnosis.regions, key=lambda r: r.support)

    def page(token: str) -> pb.ListRegionMembersResponse:
        return client._unary(client.stub.ListRegionMembers, pb.ListRegionMembersRequest(
            diagnosis_id=diagnosis.id, region_id=region.id, page_size=region.support // 2 + 1, page_token=token))

    first = page("")
    late = _rows(2000, seed=9, prefix="late")        # the same kinds of rows, some in the region's place
    _log(run, late)
    second = page(first.next_page_token)
    assert not second.next_page_token and second.num_rows_in_run == 6000 and second.num_rows_diagnosed == 4000
    got = list(first.sample_ids) + list(second.sample_ids)
    assert len(got) == len(set(got)) == region.support and not any(s.startswith("late") for s in got)
