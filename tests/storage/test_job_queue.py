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
    assert store.get_job("job_a").started_at == 0.0          # pending: not started
    job, _ = store.claim_job("dead", 30, 3)
    assert job.started_at > 1.0 and store.get_job("job_a").started_at == job.started_at
    assert store.claim_job("alive", 30, 3) is None           # leased: nobody else gets it
    store.renew_leases("dead", ["job_a"], 0.0)                # its lease runs out (the owner stops renewing)
    time.sleep(0.002)                                         # ... by the next statement on the database's clock
    taken, _ = store.claim_job("alive", 30, 3)
    assert taken.id == "job_a" and "restarting" in taken.stage and taken.started_at >= job.started_at
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


class _QueueModel:
    """What the queue's contract says of one job."""

    def __init__(self, created_at: float) -> None:
        self.created_at = created_at
        self.state, self.owner, self.expired = "PENDING", "", False
        self.attempts, self.cancel_requested = 0, False


OWNERS = ("r1", "r2", "r3")
MAX_ATTEMPTS = 3
DIED = -1.0          # a lease that ran out already: the replica holding it died


def _queue_machine(open_store_fn):
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

    class QueueMachine(RuleBasedStateMachine):
        """Random enqueues, claims, heartbeats, writes and cancels from three replicas against a model.

        Leases are either long (the replica is alive) or already run out (it died), so the model
        needs no clock; every transition of the queue's docstrings is reachable."""

        def __init__(self) -> None:
            super().__init__()
            self.store = open_store_fn()
            self.jobs: dict[str, _QueueModel] = {}

        def teardown(self):
            self.store.close()

        @rule()
        def enqueue(self):
            job_id = f"job_{len(self.jobs):02d}"
            _enqueue(self.store, job_id, 1000.0 + len(self.jobs))
            self.jobs[job_id] = _QueueModel(1000.0 + len(self.jobs))

        @rule(owner=st.sampled_from(OWNERS), dies=st.booleans())
        def claim(self, owner, dies):
            want = None
            for job_id, m in sorted(self.jobs.items(), key=lambda kv: kv[1].created_at):
                if not (m.state == "PENDING" or (m.state == "RUNNING" and m.expired)):
                    continue
                if m.cancel_requested:
                    m.state, m.owner = "CANCELLED", ""
                    continue
                if m.attempts >= MAX_ATTEMPTS:
                    m.state, m.owner = "FAILED", ""
                    continue
                was = m.state
                m.state, m.owner, m.expired, m.attempts = "RUNNING", owner, dies, m.attempts + 1
                want = (job_id, was)
                break
            got = self.store.claim_job(owner, DIED if dies else 3600.0, MAX_ATTEMPTS)
            if want is None:
                assert got is None
                return
            job, params = got
            assert job.id == want[0] and job.state == "RUNNING" and job.fraction_done == 0
            assert ("restarting" in job.stage) == (want[1] == "RUNNING")
            assert params == {"run_id": "run_a", "kwargs": {"seed": 3}}

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), owner=st.sampled_from(OWNERS), dies=st.booleans(),
              state=st.sampled_from(["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]))
        def write(self, data, owner, dies, state):
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            m = self.jobs[job_id]
            job = self.store.get_job(job_id)
            job.state, job.fraction_done, job.stage = state, 0.5, "working"
            held = m.state == "RUNNING" and m.owner == owner
            assert self.store.update_claimed_job(job, owner, DIED if dies else 3600.0) == held
            if held:
                m.state, m.expired = state, dies

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), owner=st.sampled_from(OWNERS), lease=st.sampled_from([DIED, 0.0, 3600.0]))
        def heartbeat(self, data, owner, lease):
            ids = data.draw(st.lists(st.sampled_from(sorted(self.jobs)), unique=True))
            want = {j: self.jobs[j].cancel_requested for j in ids
                    if self.jobs[j].state == "RUNNING" and self.jobs[j].owner == owner}
            assert self.store.renew_leases(owner, ids, lease) == want
            for j in want:
                self.jobs[j].expired = lease <= 0
            if lease == 0.0:
                time.sleep(0.002)        # "lease 0": run out by the next statement on the database's clock

        @precondition(lambda self: self.jobs)
        @rule(data=st.data())
        def cancel(self, data):
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            m = self.jobs[job_id]
            if m.state == "PENDING":
                m.state = "CANCELLED"
            elif m.state == "RUNNING":
                m.cancel_requested = True
            assert self.store.request_cancel(job_id).state == m.state

        @invariant()
        def states_are_the_models(self):
            for job_id, m in self.jobs.items():
                assert self.store.get_job(job_id).state == m.state, job_id

    return QueueMachine


def test_random_sequences_of_replica_calls_keep_the_queue_contract(postgres_database, tmp_path):
    """The queue's contract as a state machine (three replicas, deaths, cancels, fenced writes)."""
    import pgtest
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    def fresh() -> object:
        return open_store(pgtest.fresh_schema(postgres_database), files=str(tmp_path / "files"))

    run_state_machine_as_test(_queue_machine(fresh), settings=settings(
        max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)))
