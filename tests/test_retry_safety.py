"""Calls that create something are safe to repeat, through a real server: a CreateRun, CreatePool or
Suggest repeated with its request_id gets what the first one made, and a connection cut before the
answer arrives (a real TCP proxy on loopback) makes the SDK retry without making a second one."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from blindspots import Client
from blindspots.errors import InvalidArgumentError, JobFailedError
from blindspots.v1 import blindspots_pb2 as pb
from netfault import CuttingProxy
from test_api import _log_scenario


def _same_answer(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs


def test_a_repeated_request_id_answers_with_the_set_it_made(client, small_scenario):
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)
    first = run.suggest(pool, budget=150, request_id="nightly-2026-11-29", progress=False)
    again = run.suggest(pool, budget=150, request_id="nightly-2026-11-29", progress=False)
    _same_answer(first, again)          # the same picks, set id, exclusions, note and coverage
    sets = run.suggestion_sets()
    assert sets["id"].tolist() == [first.attrs["suggestion_set"]]
    assert sets["request_id"].tolist() == ["nightly-2026-11-29"]
    # Another request is another round: it leaves the first one's picks out.
    other = run.suggest(pool, budget=150, request_id="nightly-2026-11-30", progress=False)
    assert not set(other["sample_id"]) & set(first["sample_id"])
    assert other.attrs["exclusions"]["earlier_picks"] == 150
    # The id belongs to the run and pool: the same id from another pool is a round of its own.
    s = small_scenario.scenario
    second_pool = client.create_pool("second", embedding_dim=s.pool.embeddings.shape[1],
                                     num_classes=len(s.class_names), project="listings")
    second_pool.add(s.pool.ids[:3000], s.pool.embeddings[:3000], probabilities=small_scenario.pool_probs[:3000],
                    metadata=s.pool.metadata[:3000])
    elsewhere = run.suggest(second_pool, budget=20, request_id="nightly-2026-11-29", progress=False)
    assert elsewhere.attrs["suggestion_set"] != first.attrs["suggestion_set"]
    # The same id asking for something else is refused, naming the set it made; nothing is stored.
    with pytest.raises(InvalidArgumentError, match=r"request_id: 'nightly-2026-11-29' already made suggestion set "
                                                   f"'{first.attrs['suggestion_set']}' \\(strategy 'targeted', budget 150\\)"):
        run.suggest(pool, budget=151, request_id="nightly-2026-11-29", progress=False)
    with pytest.raises(InvalidArgumentError, match="request_id"):
        run.suggest(pool, budget=150, strategy="margin", request_id="nightly-2026-11-29", progress=False)
    assert len(run.suggestion_sets(pool)) == 2
    # Once the set is deleted the id is free: a new round under it.
    client.delete_suggestion_set(first.attrs["suggestion_set"])
    fresh = run.suggest(pool, budget=150, request_id="nightly-2026-11-29", progress=False)
    assert fresh.attrs["suggestion_set"] not in (first.attrs["suggestion_set"], other.attrs["suggestion_set"])


def test_a_connection_cut_mid_answer_is_retried_without_a_second_round(server, client, small_scenario):
    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)
    proxy = CuttingProxy(server.port)
    through = Client(f"127.0.0.1:{proxy.port}", retries=3, timeout=120)
    try:
        assert through.get_run(run.id).id == run.id            # the channel is up
        # The set is stored before its candidates stream (2,000 of them, some 400 kB); the cut
        # lands in that stream, after the first 64 kB.
        proxy.arm(after_bytes=64 * 1024)
        picks = through.suggest(run.id, pool.id, budget=2000, progress=False)
    finally:
        through.close()
        proxy.close()
    assert proxy.cuts == 1
    sets = run.suggestion_sets()
    assert sets["id"].tolist() == [picks.attrs["suggestion_set"]] and sets["request_id"][0].startswith("sdk-")
    assert len(picks) == 2000 and picks.attrs["exclusions"]["earlier_picks"] == 0
    _same_answer(picks, client.get_suggestion_set(picks.attrs["suggestion_set"]))


def test_a_pipeline_step_run_again_writes_the_same_manifest(server, client, small_scenario, tmp_path):
    import subprocess
    import sys

    run, pool, _ = _log_scenario(client, small_scenario)
    run.diagnose(progress=False)

    def step(out: str):
        return subprocess.run([sys.executable, "-m", "blindspots.cli", "suggest", run.id, "--pool", pool.id,
                               "--budget", "80", "-o", str(tmp_path / out), "--request-id", "ci-job-4711",
                               "--address", f"127.0.0.1:{server.port}"], capture_output=True, text=True, timeout=120)

    first, again = step("a.json"), step("b.json")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert len(run.suggestion_sets()) == 1


def test_a_repeated_create_gets_the_run_or_pool_it_made(client, small_scenario):
    s, sm = small_scenario.scenario, small_scenario
    dim = s.test.embeddings.shape[1]

    def step():
        """A pipeline step: create the run (the CI job's id makes it this step's run) and log into it."""
        run = client.create_run("eval", class_names=s.class_names, embedding_dim=dim, model_name="mlp",
                                model_version="v7", project="listings", request_id="ci-4711-eval")
        run.log_predictions(s.test.ids[:500], s.test.embeddings[:500], labels=s.test.labels[:500],
                            probabilities=sm.test_probs[:500], progress=False)
        return run

    first, again = step(), step()
    assert again.id == first.id and client.get_run(first.id).message.num_rows == 500
    assert [r.id for r in client.list_runs("listings")] == [first.id]
    # Another project, or no request id, is another run.
    elsewhere = client.create_run("eval", class_names=s.class_names, embedding_dim=dim, project="other",
                                  request_id="ci-4711-eval")
    assert elsewhere.id != first.id
    # The same id asking for another run is refused, naming what differs; nothing is made.
    with pytest.raises(InvalidArgumentError, match=r"request_id: 'ci-4711-eval' already created run '"
                                                   + first.id + r"' with model_version 'v7', not 'v8'"):
        client.create_run("eval", class_names=s.class_names, embedding_dim=dim, model_name="mlp",
                          model_version="v8", project="listings", request_id="ci-4711-eval")
    assert len(client.list_runs("listings")) == 1
    # Pools alike.
    pool = client.create_pool("unlabeled", embedding_dim=dim, num_classes=len(s.class_names), project="listings",
                              request_id="ci-4711-pool")
    assert client.create_pool("unlabeled", embedding_dim=dim, num_classes=len(s.class_names), project="listings",
                              request_id="ci-4711-pool").id == pool.id
    with pytest.raises(InvalidArgumentError, match="request_id: 'ci-4711-pool' already created pool .* num_classes"):
        client.create_pool("unlabeled", embedding_dim=dim, project="listings", request_id="ci-4711-pool")
    assert [p.id for p in client.list_pools("listings")] == [pool.id]
    # Once the run is deleted, its request id makes a new one.
    first.delete()
    assert step().id != first.id


def test_a_create_whose_reply_is_lost_is_retried_without_a_second_run(server, client):
    proxy = CuttingProxy(server.port)
    through = Client(f"127.0.0.1:{proxy.port}", retries=3, timeout=60)
    try:
        assert through.list_runs() == []                     # the channel is up
        proxy.arm(after_bytes=64)                            # the next reply is cut as it comes back
        run = through.create_run("eval", class_names=["a", "b"], embedding_dim=4, project="p")
        proxy.arm(after_bytes=64)
        pool = through.create_pool("unlabeled", embedding_dim=4, project="p")
    finally:
        through.close()
        proxy.close()
    assert proxy.cuts == 2
    assert [r.id for r in client.list_runs("p")] == [run.id]
    assert [p.id for p in client.list_pools("p")] == [pool.id]


def _diagnoses(client, run) -> list:
    return list(client.stub.ListDiagnoses(pb.ListDiagnosesRequest(run_id=run.id), timeout=30).diagnoses)


def test_a_repeated_diagnose_follows_the_job_it_started(client, small_scenario):
    run, _, _ = _log_scenario(client, small_scenario)
    first = run.diagnose(wait=False, request_id="ci-4711-diagnose")
    again = run.diagnose(wait=False, request_id="ci-4711-diagnose")
    assert again.id == first.id
    done = run.diagnose(progress=False, request_id="ci-4711-diagnose")     # follows it to its end
    assert done.message.job_id == first.id and len(_diagnoses(client, run)) == 1
    # Other params are another diagnosis, as is another request id.
    other = run.diagnose(wait=False, request_id="ci-4711-diagnose", min_cluster_size=40)
    plain = run.diagnose(wait=False)
    assert len({first.id, other.id, plain.id}) == 3
    for job in (other, plain):
        client.wait_job(job.id, False)
    assert len(_diagnoses(client, run)) == 3


def test_a_diagnose_whose_reply_is_lost_is_retried_without_a_second_job(server, client, small_scenario):
    run, _, _ = _log_scenario(client, small_scenario)
    proxy = CuttingProxy(server.port)
    through = Client(f"127.0.0.1:{proxy.port}", retries=3, timeout=60)
    try:
        same_run = through.get_run(run.id)                   # the channel is up
        proxy.arm(after_bytes=16)                            # the Job reply is cut as it comes back
        job = same_run.diagnose(wait=False)                  # the SDK's own request id, its own retry
    finally:
        through.close()
        proxy.close()
    assert proxy.cuts == 1
    client.wait_job(job.id, False)
    # One job ran: a second would have written a second diagnosis.
    assert [d.job_id for d in _diagnoses(client, run)] == [job.id]


def test_a_failed_diagnosis_is_started_again_under_its_request_id(server, client, small_scenario):
    run, _, _ = _log_scenario(client, small_scenario)
    row_file = sorted((Path(server.config.data_dir) / "runs" / run.id).glob("*.parquet"))[0]
    intact = row_file.read_bytes()
    damaged = bytearray(intact)
    damaged[len(damaged) // 2] ^= 0xFF
    row_file.write_bytes(bytes(damaged))
    failed = run.diagnose(wait=False, request_id="nightly-diagnose")
    with pytest.raises(JobFailedError, match="FAILED: DATA_LOSS"):
        client.wait_job(failed.id, False)
    row_file.write_bytes(intact)                       # repaired: the pipeline runs its step again
    done = run.diagnose(progress=False, request_id="nightly-diagnose")
    assert done.message.job_id != failed.id and len(_diagnoses(client, run)) == 1
    # The one that succeeded is the request's answer from now on, to the CLI's step too.
    assert run.diagnose(wait=False, request_id="nightly-diagnose").id == done.message.job_id
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "blindspots.cli", "diagnose", run.id, "--json", "--request-id",
                          "nightly-diagnose", "--address", f"127.0.0.1:{server.port}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["id"] == done.id and len(_diagnoses(client, run)) == 1
