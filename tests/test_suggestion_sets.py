"""Stored suggestion sets read back (ListSuggestionSets, GetSuggestionSet) through a real
server: the manifest a pipeline's Suggest answered with, fetched again later by id, by the
SDK and the CLI, exactly as it was answered."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pandas as pd
import pyarrow as pa
import pytest

from blindspots import InvalidArgumentError, NotFoundError
from blindspots.v1 import blindspots_pb2 as pb
from blindspots_server.server.suggestion_sets import candidates as set_candidates, set_message
from blindspots_server.storage import SuggestionSetRecord
from test_api import _log_scenario

BIN = Path(sys.executable).parent / "blindspots"


def _suggest(client, **request) -> tuple[list[pb.Candidate], pb.SuggestionSet]:
    """Suggest through the raw stub: the candidates and the last message, as sent."""
    candidates, done = [], None
    for resp in client.stub.Suggest(pb.SuggestRequest(**request)):
        kind = resp.WhichOneof("payload")
        if kind == "candidates":
            candidates.extend(resp.candidates.candidates)
        elif kind == "done":
            done = resp.done
    return candidates, done


def _get(client, set_id: str, page_size: int) -> tuple[list[pb.Candidate], pb.SuggestionSet, int]:
    got, token, pages = [], "", 0
    while True:
        page = client.stub.GetSuggestionSet(pb.GetSuggestionSetRequest(
            suggestion_set_id=set_id, page_size=page_size, page_token=token))
        got.extend(page.candidates)
        pages += 1
        token = page.next_page_token
        if not token:
            return got, page.suggestion_set, pages


def test_a_stored_set_reads_back_as_suggest_answered(client, small_scenario, tmp_path):
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)
    targeted, targeted_done = _suggest(client, run_id=run.id, pool_id=pool.id, budget=150, name="night-batch")
    assert targeted_done.pool_coverage and any(c.slice for c in targeted)     # fields a reader must get back
    other = client.create_pool("other", embedding_dim=128, project="listings")
    s = small_scenario.scenario
    other.add(s.pool.ids[:500], s.pool.embeddings[:500], metadata=s.pool.metadata[:500], progress=False)
    ask = dict(run_id=run.id, pool_id=other.id, budget=600, strategy="kcenter")
    small, small_done = _suggest(client, **ask)
    assert "exceeds" in small_done.note and small_done.exclusions.eligible == 500

    # Every field of every candidate and of the last message, whatever the page size.
    for page_size, pages in ((64, 3), (0, 1)):
        got, message, n = _get(client, targeted_done.id, page_size)
        assert got == targeted and message == targeted_done and n == pages
    got, message, _ = _get(client, small_done.id, 100)
    assert got == small and message == small_done

    # Listed oldest first, by run, by pool, by both; paged.
    def listed(**request):
        out, token = [], ""
        while True:
            resp = client.stub.ListSuggestionSets(pb.ListSuggestionSetsRequest(page_token=token, **request))
            out += [m.id for m in resp.suggestion_sets]
            token = resp.next_page_token
            if not token:
                return out
    assert listed(run_id=run.id) == [targeted_done.id, small_done.id] == listed(run_id=run.id, page_size=1)
    assert listed(pool_id=other.id) == [small_done.id] == listed(run_id=run.id, pool_id=other.id)
    assert listed(run_id=run.id, pool_id=pool.id) == [targeted_done.id]
    sets = run.suggestion_sets()
    assert sets["id"].tolist() == [targeted_done.id, small_done.id]
    assert sets.iloc[0][["name", "strategy", "budget", "num_candidates"]].tolist() == ["night-batch", "targeted",
                                                                                      150, 150]

    # The SDK: the frame and attrs suggest() returns; the CLI: the manifest suggest writes.
    with pytest.warns(UserWarning, match="exceeds"):
        frame = client.suggest(run.id, other.id, 40, strategy="random", output=str(tmp_path / "asked.csv"))
    again = client.get_suggestion_set(frame.attrs["suggestion_set"], output=str(tmp_path / "fetched.csv"))
    pd.testing.assert_frame_equal(again, frame)
    assert again.attrs == frame.attrs
    assert (tmp_path / "fetched.csv").read_text() == (tmp_path / "asked.csv").read_text()
    env = {**os.environ, "BLINDSPOTS_ADDRESS": client.address}
    done = subprocess.run([str(BIN), "suggestions", "get", targeted_done.id, "-o", str(tmp_path / "cli.json")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    tasks = json.loads((tmp_path / "cli.json").read_text())
    assert [t["data"]["sample_id"] for t in tasks] == [c.sample_id for c in targeted]
    done = subprocess.run([str(BIN), "suggestions", "list", "--run", run.id, "--json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)] == [targeted_done.id, small_done.id, frame.attrs["suggestion_set"]]
    done = subprocess.run([str(BIN), "suggestions", "list"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "--run, --pool" in done.stderr
    # The newest set of a run (and pool), without its id; `suggest --name` names a set.
    done = subprocess.run([str(BIN), "suggest", run.id, "--pool", pool.id, "--budget", "5", "--strategy", "margin",
                           "--name", "nightly-1129", "-o", str(tmp_path / "named.csv")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    named = run.suggestion_sets().iloc[-1]
    assert named["name"] == "nightly-1129" and named["pool_id"] == pool.id
    for by in (["--run", run.id], ["--run", run.id, "--pool", pool.id], ["--pool", pool.id]):
        done = subprocess.run([str(BIN), "suggestions", "get", *by, "-o", str(tmp_path / "newest.csv")],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0 and named["id"] in done.stdout, done.stdout + done.stderr
        assert (tmp_path / "newest.csv").read_text() == (tmp_path / "named.csv").read_text()
    done = subprocess.run([str(BIN), "suggestions", "get", named["id"], "--run", run.id, "-o", "x.csv"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "give a suggestion set id, or --run" in done.stderr

    # A deleted pool takes its sets with it.
    other.delete()
    assert listed(run_id=run.id) == [targeted_done.id, named["id"]]
    with pytest.raises(NotFoundError, match=small_done.id):
        client.get_suggestion_set(small_done.id)


def test_bad_requests_name_the_field(client):
    stub = client.stub
    cases = [(lambda: stub.ListSuggestionSets(pb.ListSuggestionSetsRequest()), "run_id"),
             (lambda: stub.ListSuggestionSets(pb.ListSuggestionSetsRequest(run_id="run_x", page_token="x")),
              "run 'run_x' not found"),
             (lambda: stub.GetSuggestionSet(pb.GetSuggestionSetRequest()), "suggestion_set_id"),
             (lambda: stub.GetSuggestionSet(pb.GetSuggestionSetRequest(suggestion_set_id="s", page_size=10001)),
              "page_size"),
             (lambda: stub.GetSuggestionSet(pb.GetSuggestionSetRequest(suggestion_set_id="s", page_token="-3")),
              "page_token"),
             (lambda: stub.GetSuggestionSet(pb.GetSuggestionSetRequest(suggestion_set_id="sugg_x")),
              "suggestion set 'sugg_x' not found")]
    for call, says in cases:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert says in info.value.details(), info.value.details()
        assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    with pytest.raises(InvalidArgumentError, match="run_id"):
        client.list_suggestion_sets()
    run = client.create_run("no-sets", class_names=["a", "b"], embedding_dim=2)
    done = subprocess.run([str(BIN), "suggestions", "get", "--run", run.id, "-o", "x.csv"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "BLINDSPOTS_ADDRESS": client.address})
    assert done.returncode == 1 and f"no suggestion set stored for run {run.id}" in done.stderr, done.stderr
    for as_json in (False, True):
        done = subprocess.run([str(BIN), "suggestions", "list", "--run", run.id, *(["--json"] if as_json else [])],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "BLINDSPOTS_ADDRESS": client.address})
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [] if as_json else done.stdout.strip() == "no suggestion sets"


def test_a_set_stored_before_every_field_was_kept_reads_with_the_protos_defaults():
    """Sets written by earlier servers hold seven candidate columns and no answer metadata."""
    old = pa.table({"rank": pa.array([1, 2], pa.int32()), "sample_id": ["a", "b"], "uri": ["u", ""],
                    "score": [0.9, 0.5], "region_id": pa.array([0, -1], pa.int32()), "reason": ["near", "far"],
                    "nearest_failure_id": ["f", ""]})
    record = SuggestionSetRecord(id="sugg_old", run_id="run_a", pool_id="pool_a", diagnosis_id="d", strategy="targeted",
                                 budget=2, num_candidates=2, created_at=1.0, name="")
    assert set_candidates(old, 1, 10) == [pb.Candidate(rank=2, sample_id="b", score=0.5, region_id=-1, reason="far",
                                                       predicted_label=-1)]
    message = set_message(record, old)
    assert message.id == "sugg_old" and message.note == "" and not message.HasField("exclusions")


def test_deleting_a_round_releases_its_picks_but_not_the_labeled_ones(client, small_scenario):
    """A round that will not be labeled is deleted: the next round may pick its samples again
    (margin picks the same ones), except those labeled meanwhile; the set is gone from reads."""
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)
    first = run.suggest(pool, budget=30, strategy="margin", progress=False)
    kept = run.suggest(pool, budget=10, strategy="margin", progress=False)       # stays: its picks stay out
    assert not set(kept["sample_id"]) & set(first["sample_id"])
    summary = client.delete_suggestion_set(first.attrs["suggestion_set"])
    assert (summary.id, summary.rows, summary.suggestion_sets, summary.files) == (first.attrs["suggestion_set"],
                                                                                 30, 1, 1)
    again = run.suggest(pool, budget=30, strategy="margin", progress=False)
    assert again["sample_id"].tolist() == first["sample_id"].tolist()
    assert again.attrs["exclusions"]["earlier_picks"] == 10

    labeled = again["sample_id"][:5].tolist()
    pool.import_labels(pd.DataFrame({"sample_id": labeled, "label": small_scenario.scenario.class_names[:1] * 5}),
                       source="tool")
    client.delete_suggestion_set(again.attrs["suggestion_set"])
    last = run.suggest(pool, budget=25, strategy="margin", progress=False)
    assert last["sample_id"].tolist() == again["sample_id"][5:].tolist()        # the labeled 5 stay out
    assert run.suggestion_sets()["id"].tolist() == [kept.attrs["suggestion_set"], last.attrs["suggestion_set"]]
    with pytest.raises(NotFoundError):
        client.get_suggestion_set(first.attrs["suggestion_set"])

    env = {**os.environ, "BLINDSPOTS_ADDRESS": client.address}
    gone = last.attrs["suggestion_set"]
    for args, code, says in ((["suggestions", "delete", gone], 0, f"deleted suggestion set {gone}: 25 picks released"),
                             (["suggestions", "delete", gone], 1, "NOT_FOUND"),
                             (["suggestions", "delete", gone, "--missing-ok"], 0, f"{gone}: not there")):
        done = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == code and says in done.stdout + done.stderr, done.stdout + done.stderr
