"""The job queue of a shared (PostgreSQL) catalog: exclusive claims, leases, fencing, cancel, give-up."""
from __future__ import annotations

import threading
import time

import pytest

from blindspots_server.storage import JobRecord, open_store


@pytest.fixture
def store(postgres_uri, tmp_path):
    s = open_store(postgres_uri, files=str(tmp_path / "files"))
    yield s
    s.close()


def _enqueue(store, job_id: str, created_at: float) -> JobRecord:
    job = JobRecord(id=job_id, kind="diagnose", run_id="run_a", state="PENDING", fraction_done=0.0, stage="queued",
                    result_id="", error="", created_at=created_at, updated_at=created_at)
    store.enqueue_job(job, {"run_id": "run_a", "kwargs": {"seed": 3}})
    return job


def test_claims_are_exclusive_oldest_first_and_carry_params(store, postgres_uri, tmp_path):
    for i in range(20):
        _enqueue(store, f"job_{i:02d}", 1000.0 + i)
    assert store.claim_job("w0", 30, 3)[0].id == "job_00"
    other = open_store(postgres_uri, files=str(tmp_path / "files"))      # a second replica
    claimed: dict[str, list[str]] = {"w1": [], "w2": []}

    def claim_all(owner: str, s) -> None:
        while (got := s.claim_job(owner, 30, 3)) is not None:
            job, params = got
            assert params == {"run_id": "run_a", "kwargs": {"seed": 3}} and job.state == "RUNNING"
            claimed[owner].append(job.id)

    threads = [threading.Thread(target=claim_all, args=("w1", store)), threading.Thread(target=claim_all,
                                                                                        args=("w2", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    got = claimed["w1"] + claimed["w2"]
    assert sorted(got) == [f"job_{i:02d}" for i in range(1, 20)] and len(set(got)) == 19


def test_an_expired_lease_is_claimed_again_and_the_old_owner_is_fenced_off(store):
    job = _enqueue(store, "job_a", 1.0)
    job, _ = store.claim_job("dead", 0.5, 3)
    assert store.claim_job("alive", 30, 3) is None           # leased: nobody else gets it
    time.sleep(0.7)
    taken, _ = store.claim_job("alive", 30, 3)
    assert taken.id == "job_a" and "restarting" in taken.stage
    job.state, job.result_id = "SUCCEEDED", "diag_from_the_dead"
    assert not store.update_claimed_job(job, "dead", 30)      # fenced: it lost the lease
    assert store.renew_leases("dead", ["job_a"], 30) == {}
    assert store.renew_leases("alive", ["job_a"], 30) == {"job_a": False}
    taken.state, taken.result_id = "SUCCEEDED", "diag_1"
    assert store.update_claimed_job(taken, "alive", 30)
    assert store.get_job("job_a").result_id == "diag_1"
    assert not store.update_claimed_job(taken, "alive", 30), "a finished job takes no more writes"


def test_a_job_that_keeps_losing_its_server_fails_after_max_attempts(store):
    _enqueue(store, "job_a", 1.0)
    for owner in ("r1", "r2"):
        assert store.claim_job(owner, 0.0, 2) is not None     # lease 0: expired at once, as if r died
    assert store.claim_job("r3", 30, 2) is None
    job = store.get_job("job_a")
    assert job.state == "FAILED" and "stopped 2 times" in job.error


def test_cancel_ends_a_pending_job_and_flags_a_running_one(store):
    _enqueue(store, "job_p", 1.0)
    _enqueue(store, "job_r", 0.5)
    assert store.claim_job("r1", 30, 3)[0].id == "job_r"
    assert store.request_cancel("job_p").state == "CANCELLED"
    assert store.request_cancel("job_r").state == "RUNNING"
    assert store.renew_leases("r1", ["job_r"], 30) == {"job_r": True}   # the runner's heartbeat learns it
    assert store.claim_job("r2", 30, 3) is None
    store.renew_leases("r1", ["job_r"], 0.0)                  # r1 dies before stopping it
    assert store.claim_job("r2", 30, 3) is None
    assert store.get_job("job_r").state == "CANCELLED"
