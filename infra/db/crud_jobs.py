"""Reads and writes of jobs. Every status change appends a ``job_events`` row in the same
transaction; each writing function commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, defer

from infra.db.crud_events import add_event, status_event_data, trial_event_data
from infra.db.models import (
    JOB_TERMINAL,
    TRIAL_TERMINAL,
    Artifact,
    Job,
    Trial,
    new_id,
    utcnow,
)


def _lock_job(session: Session, job_id: str) -> Job | None:
    """Load the job fresh, with a row lock on PostgreSQL (SQLite ignores FOR UPDATE)."""
    stmt = (
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).first()


class NewJobFields(TypedDict):
    """What a new job is made of (the rest of its columns start empty)."""

    owner_id: str
    dataset_id: str
    name: str
    spec: dict[str, Any]
    trials_total: int
    task_id: NotRequired[str | None]


def new_job(**fields: Unpack[NewJobFields]) -> Job:
    """A transient queued job with every column set (id and timestamps included), ready to be
    added to a session or inserted as Core values (``infra.db.hot.insert_job``)."""
    now = utcnow()
    return Job(
        id=new_id(),
        status="queued",
        progress=0.0,
        trials_done=0,
        created_at=now,
        updated_at=now,
        **fields,
    )


def create_job(session: Session, **fields: Unpack[NewJobFields]) -> Job:
    """Insert a queued job (:func:`new_job`) and its first status event; commits. The API's
    ``POST /jobs`` does the same in Core on its asyncio connection (``infra.db.hot``)."""
    job = new_job(**fields)
    session.add(job)
    session.flush()
    add_event(session, job_id=job.id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return job


def get_job(session: Session, *, job_id: str, owner_id: str | None = None) -> Job | None:
    """The job, or None (also when owner_id is given and does not match)."""
    job = session.get(Job, job_id)
    if job is None or (owner_id is not None and job.owner_id != owner_id):
        return None
    return job


def list_jobs(
    session: Session,
    *,
    owner_id: str,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """A page of the owner's jobs (newest first) and the total count."""
    where = [Job.owner_id == owner_id]
    if status is not None:
        where.append(Job.status == status)
    count = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    stmt = (
        select(Job)
        .where(*where)
        # The report (kB of JSON per finished job) and references are not part of a list
        # entry; loading them doubled the time of a 200-job page.
        .options(defer(Job.report), defer(Job.references))
        # Both keys descending: PostgreSQL reads ix_jobs_owner_created_id backwards and stops
        # after the page; a mixed order (id ascending) sorted all the owner's jobs per page.
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(stmt)), count


def count_jobs_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {status: int(n) for status, n in rows}


def _apply_status(job: Job, status: str, failure_reason: str | None) -> None:
    now = utcnow()
    job.status = status
    job.failure_reason = failure_reason
    job.updated_at = now
    if status == "running" and job.started_at is None:
        job.started_at = now
    if status in JOB_TERMINAL:
        job.finished_at = now
    elif status == "queued":
        job.finished_at = None


def claim_job(session: Session, *, job_id: str, worker: str) -> Job | None:
    """Atomically move a job queued -> running for ``worker``; None if it was not queued.

    Takes a row lock on PostgreSQL; the guarded UPDATE makes it safe on SQLite too.
    """
    locked = _lock_job(session, job_id)
    if locked is None or locked.status != "queued":
        session.rollback()
        return None
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", worker=worker, heartbeat_at=now, updated_at=now)
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


def set_job_status(
    session: Session,
    *,
    job_id: str,
    status: str,
    failure_reason: str | None = None,
    only_from: tuple[str, ...] | None = None,
) -> Job | None:
    """Set a job's status (+ started/finished times, a status event); commits.

    Returns None when the job is missing or, with ``only_from``, not in one of those statuses.
    """
    job = _lock_job(session, job_id)
    if job is None or (only_from is not None and job.status not in only_from):
        session.rollback()
        return None
    _apply_status(job, status, failure_reason)
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return job


def request_cancel(session: Session, *, job_id: str) -> Job | None:
    """queued -> cancelled (pending trials cancelled too), running -> cancelling.

    Other statuses are left alone; returns the job (None if missing).
    """
    job = _lock_job(session, job_id)
    if job is None:
        return None
    if job.status == "queued":
        _apply_status(job, "cancelled", None)
        session.execute(
            update(Trial)
            .where(Trial.job_id == job_id, Trial.status.in_(("pending", "running")))
            .values(status="cancelled", finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    elif job.status == "running":
        _apply_status(job, "cancelling", None)
    else:
        session.rollback()
        return job
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return job


def requeue_failed(session: Session, *, job_id: str) -> int | None:
    """Failed trials -> pending and the job -> queued (report cleared); commits.

    Returns the number of trials reset, or None when the job cannot be rerun (not finished,
    or finished without any failure).
    """
    job = _lock_job(session, job_id)
    if job is None or job.status not in JOB_TERMINAL:
        session.rollback()
        return None
    failed = list(
        session.scalars(select(Trial).where(Trial.job_id == job_id, Trial.status == "failed"))
    )
    if not failed and job.status != "failed":
        session.rollback()
        return None
    for trial in failed:
        trial.status = "pending"
        trial.failure_reason = None
        trial.finished_at = None
        add_event(session, job_id=job_id, type="trial", data=trial_event_data(trial), commit=False)
    job.report = None
    _apply_status(job, "queued", None)
    refresh_job_progress(session, job)
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return len(failed)


def set_job_task_id(session: Session, *, job_id: str, task_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(task_id=task_id))
    session.commit()


def heartbeat(session: Session, *, job_id: str, worker: str | None = None) -> None:
    """Record that the worker driving the job is alive (heartbeat_at = now)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if worker is not None:
        values["worker"] = worker
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    session.commit()


def set_job_report(session: Session, *, job_id: str, report: dict[str, Any]) -> None:
    """Store the job report (INTERNALS.md "Job report") and append a report event."""
    session.execute(update(Job).where(Job.id == job_id).values(report=report, updated_at=utcnow()))
    add_event(session, job_id=job_id, type="report", data={"job_id": job_id}, commit=False)
    session.commit()


def set_job_references(session: Session, *, job_id: str, references: dict[str, Any]) -> None:
    """Store the unimodal reference results ({seed: {modality: {metric: value}}})."""
    session.execute(update(Job).where(Job.id == job_id).values(references=references))
    session.commit()


def list_jobs_needing_resumption(session: Session, *, stale_before: datetime) -> list[Job]:
    """Jobs a reconciler should (re)send: queued since before ``stale_before``, or
    running/cancelling whose heartbeat is missing or older than ``stale_before``."""
    stmt = select(Job).where(
        or_(
            (Job.status == "queued") & (Job.created_at < stale_before),
            Job.status.in_(("running", "cancelling"))
            & or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before),
        )
    )
    return list(session.scalars(stmt.order_by(Job.created_at)))


def delete_job(session: Session, *, job_id: str) -> list[str]:
    """Delete the job and its rows (cascade); returns its artifacts' relative paths."""
    paths = list(session.scalars(select(Artifact.path).where(Artifact.job_id == job_id)))
    job = session.get(Job, job_id)
    if job is not None:
        session.delete(job)
    session.commit()
    return paths


def refresh_job_progress(session: Session, job: Job) -> None:
    done = session.scalar(
        select(func.count())
        .select_from(Trial)
        .where(Trial.job_id == job.id, Trial.status.in_(tuple(TRIAL_TERMINAL)))
    )
    job.trials_done = int(done or 0)
    job.progress = min(1.0, job.trials_done / job.trials_total) if job.trials_total else 0.0
    job.updated_at = utcnow()
