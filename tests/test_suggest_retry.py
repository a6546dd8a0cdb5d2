"""Suggest is safe to repeat, through a real server: a call repeated with its request_id gets the
set the first one stored, and a connection cut while the answer streams (a real TCP proxy on
loopback) makes the SDK retry without starting a second round."""
from __future__ import annotations

import pandas as pd
import pytest

from blindspots import Client
from blindspots.errors import InvalidArgumentError
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
