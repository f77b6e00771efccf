"""The running job's lease: a thread that writes ``jobs.heartbeat_at`` every few seconds.

The heartbeat is fenced: it only updates the row while the job is still ``running`` (or
``cancelling``) *for this worker*. If the reconciler gave the job to another worker (this one
looked dead, e.g. it was frozen), the update touches nothing, ``lost`` becomes True and the run
stops without writing a final status (``worker.job_runner`` checks ``owns_job``). Database
errors are logged and retried at the next beat: a short outage costs a few missed beats only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infra.db.models import Job, utcnow

log = logging.getLogger(__name__)

LEASE_STATUSES = ("running", "cancelling")


def beat(session: Session, *, job_id: str, worker: str) -> bool:
    """Write the heartbeat if ``worker`` still holds the job; False when it lost it."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status.in_(LEASE_STATUSES))
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


def owns_job(session: Session, *, job_id: str, worker: str) -> bool:
    """Whether ``worker`` still holds the job (running or cancelling, for this worker)."""
    row = session.execute(select(Job.status, Job.worker).where(Job.id == job_id)).first()
    return row is not None and row[0] in LEASE_STATUSES and row[1] == worker


class JobHeartbeat(threading.Thread):
    """``with JobHeartbeat(sessions, job_id, worker, interval_s):`` beats while the block runs."""

    def __init__(
        self, sessions: Callable[[], Session], job_id: str, worker: str, interval_s: float
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id[:8]}", daemon=True)
        self.sessions = sessions
        self.job_id = job_id
        self.worker = worker
        self.interval_s = interval_s
        self.lost = False
        self._stop_event = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                with self.sessions() as session:
                    held = beat(session, job_id=self.job_id, worker=self.worker)
                if self._failing:
                    log.info("job %s: heartbeat written again", self.job_id)
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    log.warning("job %s: heartbeat failed (%s)", self.job_id, type(exc).__name__)
                self._failing = True
                continue
            if not held:
                log.warning("job %s: no longer held by %s; stopping", self.job_id, self.worker)
                self.lost = True
                return

    def __enter__(self) -> JobHeartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=10)
