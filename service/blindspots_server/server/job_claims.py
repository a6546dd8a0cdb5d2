"""Jobs claimed through a shared catalog, so that any replica runs them and another takes over.

With a store several servers open at once (``store.shared``, the PostgreSQL
catalog), Diagnose and index builds only enqueue a job. Each replica runs
``job_workers`` threads that claim jobs from the catalog (``FOR UPDATE SKIP
LOCKED``: never the same job twice, never waiting on each other) under a lease,
and one heartbeat thread that renews the leases of the jobs it runs and picks up
cancel requests. A replica that dies stops renewing; once the lease runs out
another replica claims the job and runs it from the start (the work is
deterministic given its parameters and the stored rows). Every write a replica
makes about a job is fenced by its owner id, so one that lost its lease (a long
pause, a network cut) cannot overwrite the replica that took over.

Same interface as :class:`.jobs.JobRunner`; GetJob and WatchJob read the catalog,
since the job may be running in another process.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable, Optional

from ..config import ServerConfig
from ..storage import JobRecord, Store, new_id
from .jobs import TERMINAL, JobCancelled, JobHandler, JobRunner

log = logging.getLogger("blindspots.jobs")


class JobLost(Exception):
    """Raised inside a job whose lease another replica now holds: stop, write nothing."""


def job_runner_for(store: Store, config: ServerConfig,
                   on_finish: Optional[Callable[[JobRecord, float], None]] = None,
                   on_start: Optional[Callable[[JobRecord, float], None]] = None):
    """The in-process runner for a store one process owns; catalog claims for a shared one.
    ``on_start(job, waited_s)`` and ``on_finish(job, ran_s)`` are called as each job starts and ends."""
    if store.shared:
        return ClaimedJobRunner(store, config.job_workers, on_finish, lease_s=config.job_lease_s, on_start=on_start)
    return JobRunner(store, config.job_workers, on_finish=on_finish, on_start=on_start)


class ClaimedJobRunner:
    def __init__(self, store: Store, workers: int, on_finish: Optional[Callable[[JobRecord, float], None]] = None,
                 lease_s: float = 30.0, poll_s: float = 0.5, max_attempts: int = 3,
                 on_start: Optional[Callable[[JobRecord, float], None]] = None):
        self._store = store
        self._on_finish = on_finish
        self._on_start = on_start
        self.lease_s, self._poll_s, self._max_attempts = float(lease_s), poll_s, max_attempts
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._handlers: dict[str, JobHandler] = {}
        self._running: dict[str, threading.Event] = {}      # job id -> its cancel event
        self._lost: set[str] = set()
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work_loop, name=f"job-claim-{i}", daemon=True)
                         for i in range(workers)]
        self._threads.append(threading.Thread(target=self._heartbeat_loop, name="job-heartbeat", daemon=True))

    def register(self, kind: str, handler: JobHandler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------ submitting and reading
    def submit(self, kind: str, run_id: str, params: dict, job_id: str = "", pool_id: str = "") -> JobRecord:
        if kind not in self._handlers:
            raise KeyError(f"no handler for job kind {kind!r}")
        now = time.time()
        job = JobRecord(id=job_id or new_id("job"), kind=kind, run_id=run_id, state="PENDING", fraction_done=0.0,
                        stage="queued", result_id="", error="", created_at=now, updated_at=now, pool_id=pool_id)
        self._store.enqueue_job(job, params)
        self._wake.set()              # this replica's idle workers look now, not at their next poll
        return job

    def get(self, job_id: str) -> JobRecord:
        return self._store.get_job(job_id)

    def current(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """``jobs`` as read from the catalog, which every replica updates as its jobs go."""
        return jobs

    def cancel(self, job_id: str) -> JobRecord:
        job = self._store.request_cancel(job_id)
        with self._guard:
            event = self._running.get(job_id)
        if event is not None:
            event.set()
        return job

    def wait_change(self, job_id: str, last_updated: float, timeout: float) -> JobRecord:
        """Poll the catalog until the job changes after ``last_updated`` or ``timeout`` passes."""
        deadline = time.time() + timeout
        while True:
            job = self._store.get_job(job_id)
            if job.updated_at > last_updated or job.state in TERMINAL or time.time() >= deadline:
                return job
            self._stop.wait(min(0.2, max(deadline - time.time(), 0.0)))

    # ------------------------------------------------------------ claiming and running
    def _work_loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._store.claim_job(self.owner, self.lease_s, self._max_attempts)
            except Exception:  # a catalog outage must not end the worker
                log.warning("claiming a job failed; retrying", exc_info=True)
                self._stop.wait(2.0)
                continue
            if claimed is None:
                self._wake.wait(self._poll_s)
                self._wake.clear()
                continue
            self._run(*claimed)

    def _run(self, job: JobRecord, params: dict) -> None:
        cancel = threading.Event()
        with self._guard:
            self._running[job.id] = cancel
        started, last_saved = time.time(), [0.0]
        log.info("job %s (%s) claimed by %s (%s)", job.id, job.kind, self.owner, job.stage)

        def write(**changes) -> None:
            for k, v in changes.items():
                setattr(job, k, v)
            job.updated_at = time.time()
            if not self._store.update_claimed_job(job, self.owner, self.lease_s):
                raise JobLost()

        def progress(fraction: float, stage: str) -> None:
            if cancel.is_set():
                raise JobCancelled()
            if job.id in self._lost or self._stop.is_set():
                raise JobLost()
            now = time.time()
            if now - last_saved[0] > 0.5:
                last_saved[0] = now
                write(fraction_done=float(min(max(fraction, 0.0), 1.0)), stage=stage)

        try:
            if self._on_start:
                # From its submission (another replica's clock, hence the floor at 0); a job taken over
                # from a replica that died counts the time until this start.
                self._on_start(job, max(0.0, started - job.created_at))
            handler = self._handlers.get(job.kind)
            if handler is None:
                raise ValueError(f"this server has no handler for job kind {job.kind!r}")
            result_id = handler(job.id, params, progress)
            write(state="SUCCEEDED", fraction_done=1.0, stage="done", result_id=result_id)
        except JobLost:
            log.warning("job %s: %s no longer holds it; another server runs it", job.id, self.owner)
        except JobCancelled as exc:
            self._finish_quietly(write, state="CANCELLED", stage=exc.stage)
        except Exception as exc:  # a failed job must not take the server down
            log.exception("job %s (%s) failed", job.id, job.kind)
            self._finish_quietly(write, state="FAILED", stage="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if self._on_finish:
                self._on_finish(job, time.time() - started)
            with self._guard:
                self._running.pop(job.id, None)
                self._lost.discard(job.id)

    @staticmethod
    def _finish_quietly(write, **changes) -> None:
        try:
            write(**changes)
        except JobLost:
            pass

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._guard:
                ids = list(self._running)
            if not ids:
                continue
            try:
                held = self._store.renew_leases(self.owner, ids, self.lease_s)
            except Exception:
                log.warning("renewing job leases failed; retrying", exc_info=True)
                continue
            with self._guard:
                for job_id in ids:
                    if job_id not in held:
                        self._lost.add(job_id)
                    elif held[job_id] and job_id in self._running:
                        self._running[job_id].set()

    def shutdown(self) -> None:
        """Stop claiming; hand running jobs back at once (lease 0) so another replica takes them."""
        self._stop.set()
        self._wake.set()
        with self._guard:
            ids = list(self._running)
        if ids:
            try:
                self._store.renew_leases(self.owner, ids, 0.0)
            except Exception:
                log.warning("could not hand back jobs %s; their leases run out instead", ids, exc_info=True)
        for t in self._threads:
            t.join(timeout=5)
