"""A job's lease: the worker that claims a queued job holds it while it runs and renews it with
heartbeats; the housekeeping takes back a job whose heartbeat went stale (its worker died).

A worker's writes are fenced by the lease: ``beat_job`` and ``owns_job`` only answer True while
the job is still running (or cancelling) *for that worker*, so a worker that only looked dead
(frozen for a while) finds out it lost the job and leaves it alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, aliased

from infra.db.crud_events import add_event, status_event_data
from infra.db.crud_jobs import apply_status, lock_job
from infra.db.crud_trials import set_trial_status
from infra.db.models import (
    JOB_LEASED,
    TRIAL_OPEN,
    Job,
    JobStatus,
    Trial,
    TrialStatus,
    User,
    utcnow,
)


def claim_job(
    session: Session, *, job_id: str, worker: str, max_running: int | None = None
) -> Job | None:
    """Atomically move a job queued -> running for ``worker``; None if it was not queued, or if
    its owner already runs ``max_running`` jobs (None: no cap).

    Takes a row lock on PostgreSQL (the owner's row too under a cap, so that claims of one
    owner's jobs take turns); the guarded UPDATE (the cap's count inside it) makes it safe on
    SQLite too.
    """
    locked = lock_job(session, job_id)
    if locked is None or locked.status != JobStatus.QUEUED:
        session.rollback()
        return None
    guards = [Job.id == job_id, Job.status == JobStatus.QUEUED]
    if max_running is not None:
        # NO KEY: inserts of the owner's jobs, which reference the row, go on.
        owner = locked.owner_id
        session.execute(select(User.id).where(User.id == owner).with_for_update(key_share=True))
        guards.append(_leased_count(owner) < max_running)
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(*guards)
        .values(status=JobStatus.RUNNING, worker=worker, heartbeat_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.rollback()
        return None
    session.refresh(locked)
    if locked.started_at is None:
        locked.started_at = now
    locked.failure_reason = None
    add_event(session, job_id=job_id, type="status", data=status_event_data(locked), commit=False)
    session.commit()
    return locked


def _leased_count(owner_id: str) -> Any:
    """The owner's running and cancelling jobs (a scalar subquery)."""
    other = aliased(Job)
    return (
        select(func.count())
        .select_from(other)
        .where(other.owner_id == owner_id, other.status.in_(JOB_LEASED))
        .scalar_subquery()
    )


def beat_job(session: Session, *, job_id: str, worker: str) -> bool:
    """Renew ``worker``'s lease on the job (heartbeat_at = now); False when it lost the job."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status.in_(JOB_LEASED))
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


def heartbeat(session: Session, *, job_id: str, worker: str | None = None) -> None:
    """Record that the worker driving the job is alive (unfenced; ``worker`` sets the holder)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if worker is not None:
        values["worker"] = worker
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    session.commit()


def job_status_and_worker(session: Session, *, job_id: str) -> tuple[str | None, str | None]:
    """(status, lease holder) of the job now; (None, None) when it is gone."""
    row = session.execute(select(Job.status, Job.worker).where(Job.id == job_id)).first()
    return (None, None) if row is None else (row[0], row[1])


def owns_job(session: Session, *, job_id: str, worker: str) -> bool:
    """Whether ``worker`` still holds the job (running or cancelling, for this worker)."""
    status, holder = job_status_and_worker(session, job_id=job_id)
    return status in JOB_LEASED and holder == worker


def list_expired_leases(session: Session, *, stale_before: datetime) -> list[tuple[str, str]]:
    """(job id, status) of running/cancelling jobs whose heartbeat is missing or older than
    ``stale_before``, oldest first."""
    stmt = (
        select(Job.id, Job.status)
        .where(
            Job.status.in_(JOB_LEASED),
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before),
        )
        .order_by(Job.created_at)
    )
    return [(str(i), str(s)) for i, s in session.execute(stmt)]


def _end_lease(
    session: Session,
    *,
    job_id: str,
    stale_before: datetime,
    from_status: JobStatus,
    to_status: JobStatus,
    trials_from: tuple[str, ...],
    trials_to: TrialStatus,
) -> bool:
    """In one transaction, with the job row locked: if the job is still ``from_status`` and its
    heartbeat older than ``stale_before`` (a heartbeat written since the listing wins), move its
    trials in ``trials_from`` to ``trials_to`` and the job to ``to_status``, with their events."""
    job = lock_job(session, job_id)
    beat = job.heartbeat_at if job is not None else None
    if job is None or job.status != from_status or (beat is not None and beat >= stale_before):
        session.rollback()
        return False
    stmt = select(Trial.id).where(Trial.job_id == job_id, Trial.status.in_(trials_from))
    for trial_id in list(session.scalars(stmt)):
        set_trial_status(session, trial_id=trial_id, status=trials_to, commit=False)
    apply_status(job, to_status, None)
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return True


def requeue_expired_lease(session: Session, *, job_id: str, stale_before: datetime) -> bool:
    """running -> queued (its running trials -> pending) if its heartbeat is still older than
    ``stale_before``; commits. The next run resumes the trials from their checkpoints."""
    return _end_lease(
        session,
        job_id=job_id,
        stale_before=stale_before,
        from_status=JobStatus.RUNNING,
        to_status=JobStatus.QUEUED,
        trials_from=(TrialStatus.RUNNING,),
        trials_to=TrialStatus.PENDING,
    )


def cancel_expired_lease(session: Session, *, job_id: str, stale_before: datetime) -> bool:
    """cancelling -> cancelled (its open trials cancelled) if its heartbeat is still older than
    ``stale_before``: nobody is left to stop it. Commits."""
    return _end_lease(
        session,
        job_id=job_id,
        stale_before=stale_before,
        from_status=JobStatus.CANCELLING,
        to_status=JobStatus.CANCELLED,
        trials_from=TRIAL_OPEN,
        trials_to=TrialStatus.CANCELLED,
    )
