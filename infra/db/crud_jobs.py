"""Reads and writes of jobs. Every status change appends a ``job_events`` row in the same
transaction; each writing function commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from infra.db.crud_events import add_event, status_event_data, trial_event_data
from infra.db.models import (
    JOB_TERMINAL,
    TRIAL_OPEN,
    TRIAL_TERMINAL,
    Artifact,
    Job,
    JobStatus,
    Trial,
    TrialStatus,
    new_id,
    utcnow,
)


def lock_job(session: Session, job_id: str) -> Job | None:
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
    added to a session."""
    now = utcnow()
    return Job(
        id=new_id(),
        status=JobStatus.QUEUED,
        progress=0.0,
        trials_done=0,
        created_at=now,
        updated_at=now,
        **fields,
    )


def create_job(session: Session, **fields: Unpack[NewJobFields]) -> Job:
    """Insert a queued job (:func:`new_job`) and its first status event; commits."""
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


def list_job_headlines(session: Session, *, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{job id: its report's ``headline``} for the jobs of ``job_ids`` that have one. Only that
    key of each report is read: the jobs list shows it and leaves the rest unloaded."""
    if not job_ids:
        return {}
    stmt = select(Job.id, Job.report["headline"]).where(Job.id.in_(job_ids))
    return {job_id: headline for job_id, headline in session.execute(stmt) if headline}


def count_jobs_by_status(session: Session, *, owner_id: str | None = None) -> dict[str, int]:
    """Jobs per status, of ``owner_id`` only when given."""
    query = select(Job.status, func.count()).group_by(Job.status)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    rows = session.execute(query).all()
    return {status: int(n) for status, n in rows}


def apply_status(job: Job, status: str, failure_reason: str | None) -> None:
    """Set the status and what goes with it on a loaded job (no event, no commit)."""
    now = utcnow()
    job.status = status
    job.failure_reason = failure_reason
    job.updated_at = now
    if status == JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if status in JOB_TERMINAL:
        job.finished_at = now
    elif status == JobStatus.QUEUED:
        job.finished_at = None
        # Queued again: sent now (the housekeeping's resends and backoff start over).
        job.last_sent_at = None
        job.send_count = 0


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
    job = lock_job(session, job_id)
    if job is None or (only_from is not None and job.status not in only_from):
        session.rollback()
        return None
    apply_status(job, status, failure_reason)
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return job


def request_cancel(session: Session, *, job_id: str) -> Job | None:
    """queued -> cancelled (pending trials cancelled too), running -> cancelling.

    Other statuses are left alone; returns the job (None if missing).
    """
    job = lock_job(session, job_id)
    if job is None:
        return None
    if job.status == JobStatus.QUEUED:
        apply_status(job, JobStatus.CANCELLED, None)
        session.execute(
            update(Trial)
            .where(Trial.job_id == job_id, Trial.status.in_(TRIAL_OPEN))
            .values(status=TrialStatus.CANCELLED, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    elif job.status == JobStatus.RUNNING:
        apply_status(job, JobStatus.CANCELLING, None)
    else:
        session.rollback()
        return job
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return job


def requeue_failed(session: Session, *, job_id: str, task_id: str | None = None) -> int | None:
    """Failed trials -> pending and the job -> queued (report cleared), its message to be sent
    as ``task_id``; commits.

    Returns the number of trials reset, or None when the job cannot be rerun (not finished,
    or finished without any failure).
    """
    job = lock_job(session, job_id)
    if job is None or job.status not in JOB_TERMINAL:
        session.rollback()
        return None
    failed = list(
        session.scalars(
            select(Trial).where(Trial.job_id == job_id, Trial.status == TrialStatus.FAILED)
        )
    )
    if not failed and job.status != JobStatus.FAILED:
        session.rollback()
        return None
    for trial in failed:
        trial.status = TrialStatus.PENDING
        trial.failure_reason = None
        trial.finished_at = None
        add_event(session, job_id=job_id, type="trial", data=trial_event_data(trial), commit=False)
    job.report = None
    job.task_id = task_id
    apply_status(job, JobStatus.QUEUED, None)
    refresh_job_progress(session, job)
    add_event(session, job_id=job_id, type="status", data=status_event_data(job), commit=False)
    session.commit()
    return len(failed)


def set_job_task_id(session: Session, *, job_id: str, task_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(task_id=task_id))
    session.commit()


def set_trials_total(session: Session, *, job_id: str, trials_total: int) -> None:
    """Set the planned number of trials (the API's estimate may differ from the plan)."""
    session.execute(update(Job).where(Job.id == job_id).values(trials_total=trials_total))
    session.commit()


@dataclass(frozen=True)
class SendState:
    """What the housekeeping decides a resend from: ``waiting_since``, when the job was last
    queued (a dataset: created), which is when its first message was sent (by the API, right
    after the commit); ``last_sent_at`` and ``send_count``, its resends since."""

    id: str
    waiting_since: datetime
    last_sent_at: datetime | None
    send_count: int


def mark_job_sent(session: Session, *, job_id: str, task_id: str) -> None:
    """Record that the housekeeping sent ``synib.run_job(job_id)`` again, as ``task_id``, now."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            task_id=task_id,
            last_sent_at=utcnow(),
            send_count=Job.send_count + 1,
            updated_at=Job.updated_at,  # a send is no change of the job itself
        )
    )
    session.commit()


def list_queued_job_sends(session: Session) -> list[SendState]:
    """The send state of every queued job, oldest first."""
    stmt = (
        select(Job.id, Job.updated_at, Job.last_sent_at, Job.send_count)
        .where(Job.status == JobStatus.QUEUED)
        .order_by(Job.created_at)
    )
    return [SendState(*row) for row in session.execute(stmt)]


def set_job_report(session: Session, *, job_id: str, report: dict[str, Any]) -> None:
    """Store the job report (docs/USER_GUIDE.md, "The report") with the trial each method is
    reported at (``best_trials``), and append a report event."""
    best = {
        method: entry["best_trial_id"]
        for method, entry in (report.get("methods") or {}).items()
        if isinstance(entry, dict) and entry.get("best_trial_id")
    }
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(report=report, best_trials=best, updated_at=utcnow())
    )
    add_event(session, job_id=job_id, type="report", data={"job_id": job_id}, commit=False)
    session.commit()


def set_job_references(session: Session, *, job_id: str, references: dict[str, Any]) -> None:
    """Store the unimodal reference results ({seed: {modality: {metric: value}}})."""
    session.execute(update(Job).where(Job.id == job_id).values(references=references))
    session.commit()


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
