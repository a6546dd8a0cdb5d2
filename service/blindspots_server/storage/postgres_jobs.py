"""The job queue of the PostgreSQL catalog: claims under leases, on the database's clock.

A replica claims the oldest PENDING job, or a RUNNING one whose lease ran out
(its replica died or lost the database), with ``SELECT ... FOR UPDATE SKIP
LOCKED``: two replicas polling at once never claim the same job, and neither
waits on the other. The claimant renews its lease while it works (a heartbeat
thread in server/job_claims.py); every write it makes is fenced by ``owner``,
so a replica that lost its lease cannot overwrite the work of the one that
took the job over. Lease times are read from PostgreSQL's clock, never from
the replicas', so their clocks need not agree.
"""
from __future__ import annotations

import json
import time
from typing import Optional

from .base import JobRecord, NotFound
from .sql_catalog import JOB_COLUMNS

_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"


class JobQueueMixin:
    """Job methods of :class:`.postgres.PostgresStore` (uses its ``_tx`` and ``_query``)."""

    def get_job(self, job_id: str) -> JobRecord:
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=%s", (job_id,))
        if not rows:
            raise NotFound(f"job {job_id!r} not found")
        return JobRecord(*rows[0])

    def enqueue_job(self, job: JobRecord, params: dict) -> None:
        with self._tx() as cur:
            cur.execute(f"INSERT INTO jobs ({JOB_COLUMNS}, params) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        (job.id, job.kind, job.run_id, job.state, job.fraction_done, job.stage, job.result_id,
                         job.error, job.created_at, job.updated_at, job.pool_id, job.started_at, json.dumps(params)))

    def claim_job(self, owner: str, lease_s: float, max_attempts: int) -> Optional[tuple[JobRecord, dict]]:
        while True:
            with self._tx() as cur:
                cur.execute(f"SELECT id, attempts, cancel_requested, state FROM jobs "
                            f"WHERE state = 'PENDING' OR (state = 'RUNNING' AND lease_until < {_NOW}) "
                            "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED")
                row = cur.fetchone()
                if row is None:
                    return None
                job_id, attempts, cancel_requested, state = row
                now = time.time()
                if cancel_requested:
                    # Its replica died after a cancel was asked: the answer is CANCELLED, not a rerun.
                    cur.execute("UPDATE jobs SET state='CANCELLED', stage='cancelled', owner='', updated_at=%s "
                                "WHERE id=%s", (now, job_id))
                    continue
                if attempts >= max_attempts:
                    cur.execute("UPDATE jobs SET state='FAILED', stage='failed', owner='', updated_at=%s, error=%s "
                                "WHERE id=%s", (now, f"the servers running this job stopped {attempts} times "
                                                     "before it finished; not trying again", job_id))
                    continue
                stage = "starting" if state == "PENDING" else "restarting (the server running it stopped)"
                cur.execute(f"UPDATE jobs SET state='RUNNING', owner=%s, lease_until={_NOW} + %s, "
                            "attempts=attempts+1, fraction_done=0, stage=%s, updated_at=%s, started_at=%s WHERE id=%s "
                            f"RETURNING {JOB_COLUMNS}, params",
                            (owner, lease_s, stage, now, now, job_id))
                claimed = cur.fetchone()
                return JobRecord(*claimed[:-1]), json.loads(claimed[-1])

    def update_claimed_job(self, job: JobRecord, owner: str, lease_s: float) -> bool:
        with self._tx() as cur:
            cur.execute(f"UPDATE jobs SET state=%s, fraction_done=%s, stage=%s, result_id=%s, error=%s, "
                        f"updated_at=%s, lease_until={_NOW} + %s WHERE id=%s AND owner=%s AND state='RUNNING'",
                        (job.state, job.fraction_done, job.stage, job.result_id, job.error, job.updated_at,
                         lease_s, job.id, owner))
            return cur.rowcount == 1

    def renew_leases(self, owner: str, job_ids: list[str], lease_s: float) -> dict[str, bool]:
        if not job_ids:
            return {}
        with self._tx() as cur:
            cur.execute(f"UPDATE jobs SET lease_until={_NOW} + %s WHERE id = ANY(%s) AND owner=%s "
                        "AND state='RUNNING' RETURNING id, cancel_requested", (lease_s, list(job_ids), owner))
            return {row[0]: bool(row[1]) for row in cur.fetchall()}

    def request_cancel(self, job_id: str) -> JobRecord:
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET state = CASE WHEN state='PENDING' THEN 'CANCELLED' ELSE state END, "
                        "stage = CASE WHEN state='PENDING' THEN 'cancelled' ELSE stage END, "
                        "cancel_requested = (state = 'RUNNING'), updated_at=%s "
                        "WHERE id=%s AND state IN ('PENDING', 'RUNNING')", (time.time(), job_id))
        return self.get_job(job_id)
