"""Long work (diagnoses, index builds) off the RPC threads, with progress.

A job is a kind and JSON-able parameters; each kind has a handler registered
at start-up, so that any server holding the same handlers can run it (with a
shared catalog another replica takes a job over: :mod:`.job_claims`).

Here, for a store one process owns (the embedded store), a job runs in a
small thread pool; its state lives in memory while it runs and is written to
the store at each state change (and at most twice a second for progress), so
GetJob answers after a restart too. Cancellation is cooperative: the job's
progress callback raises :class:`JobCancelled`.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from ..core.results import ProgressFn
from ..storage import JobRecord, Store, new_id
from .errors import client_message, status_for

log = logging.getLogger("blindspots.jobs")

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
JOB_KINDS = ("diagnose", "index_build")          # the kinds the server registers handlers for


class JobCancelled(Exception):
    """Raised inside a job's progress callback once cancellation was asked, or by a job whose
    object went away under it (its message, if any, becomes the job's stage)."""

    @property
    def stage(self) -> str:
        return f"cancelled: {self.args[0]}" if self.args else "cancelled"


# work(job_id, progress) -> result_id
JobFn = Callable[[str, ProgressFn], str]
# handler(job_id, params, progress) -> result_id
JobHandler = Callable[[str, dict, ProgressFn], str]


class JobRunner:
    def __init__(self, store: Store, workers: int,
                 on_finish: Optional[Callable[[JobRecord, float], None]] = None,
                 on_start: Optional[Callable[[JobRecord, float], None]] = None):
        self._store = store
        self._on_start = on_start
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._live: dict[str, JobRecord] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._changed = threading.Condition()
        self._on_finish = on_finish
        self._handlers: dict[str, JobHandler] = {}

    def register(self, kind: str, handler: JobHandler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        """Nothing to start: jobs go to the thread pool as they are submitted."""

    def submit(self, kind: str, run_id: str, params: dict, job_id: str = "", pool_id: str = "") -> JobRecord:
        handler = self._handlers[kind]
        now = time.time()
        job = JobRecord(id=job_id or new_id("job"), kind=kind, run_id=run_id, state="PENDING", fraction_done=0.0,
                        stage="queued", result_id="", error="", created_at=now, updated_at=now, pool_id=pool_id)
        self._store.save_job(job)
        with self._changed:
            self._live[job.id] = job
            self._cancel[job.id] = threading.Event()
        self._pool.submit(self._run, job, lambda job_id, progress: handler(job_id, params, progress))
        return job

    def _update(self, job: JobRecord, persist: bool, **changes) -> None:
        with self._changed:
            for k, v in changes.items():
                setattr(job, k, v)
            job.updated_at = time.time()
            self._changed.notify_all()
        if persist:
            self._store.save_job(job)

    def _run(self, job: JobRecord, work: JobFn) -> None:
        cancel = self._cancel[job.id]
        started = time.time()
        last_saved = [0.0]

        def progress(fraction: float, stage: str) -> None:
            if cancel.is_set():
                raise JobCancelled()
            now = time.time()
            persist = now - last_saved[0] > 0.5
            if persist:
                last_saved[0] = now
            self._update(job, persist, fraction_done=float(min(max(fraction, 0.0), 1.0)), stage=stage)

        try:
            if cancel.is_set():
                raise JobCancelled()
            self._update(job, True, state="RUNNING", stage="starting", started_at=started)
            if self._on_start:
                self._on_start(job, max(0.0, started - job.created_at))
            result_id = work(job.id, progress)
            self._update(job, True, state="SUCCEEDED", fraction_done=1.0, stage="done", result_id=result_id)
        except JobCancelled as exc:
            self._update(job, True, state="CANCELLED", stage=exc.stage)
        except Exception as exc:  # a failed job must not take the server down
            log.exception("job %s (%s) failed", job.id, job.kind)
            # GetJob shows the error to callers: the same words a call would get, no server paths.
            self._update(job, True, state="FAILED", stage="failed",
                         error=f"{status_for(exc).name}: {client_message(exc)}")
        finally:
            if self._on_finish:
                self._on_finish(job, time.time() - started)
            with self._changed:
                self._live.pop(job.id, None)
                self._cancel.pop(job.id, None)
                self._changed.notify_all()

    def get(self, job_id: str) -> JobRecord:
        with self._changed:
            live = self._live.get(job_id)
            if live is not None:
                return JobRecord(**vars(live))
        return self._store.get_job(job_id)

    def current(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """``jobs`` as read from the store, each running one as it is now (its progress is saved at
        most twice a second)."""
        with self._changed:
            return [JobRecord(**vars(self._live[j.id])) if j.id in self._live else j for j in jobs]

    def cancel(self, job_id: str) -> JobRecord:
        with self._changed:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()
        return self.get(job_id)

    def wait_change(self, job_id: str, last_updated: float, timeout: float) -> JobRecord:
        """Block until the job changes after ``last_updated`` or ``timeout`` passes."""
        deadline = time.time() + timeout
        with self._changed:
            while True:
                live = self._live.get(job_id)
                if live is None or live.updated_at > last_updated:
                    break
                remaining = deadline - time.time()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return self.get(job_id)

    def shutdown(self) -> None:
        for event in list(self._cancel.values()):
            event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

