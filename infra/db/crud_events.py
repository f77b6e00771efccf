"""Job events: every status change, trial update and epoch row appends one (the SSE stream
reads them in id order)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from infra.db.models import Job, JobEvent, Trial, utcnow


def add_event(
    session: Session, *, job_id: str, type: str, data: dict[str, Any], commit: bool = True
) -> JobEvent:
    """Append one job event (type: status|trial|epoch|report)."""
    row = JobEvent(job_id=job_id, type=type, data=data, created_at=utcnow())
    session.add(row)
    session.flush()
    if commit:
        session.commit()
    return row


def list_events(
    session: Session, *, job_id: str, after_id: int = 0, limit: int = 500
) -> list[JobEvent]:
    """Events of a job with id > after_id, oldest first."""
    stmt = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def list_events_of_jobs(
    session: Session, *, after: Mapping[str, int], limit: int = 500
) -> list[JobEvent]:
    """Events of several jobs, each with id > its own ``after[job_id]``, oldest first (one
    query for every stream of an API process)."""
    if not after:
        return []
    newer = [
        and_(JobEvent.job_id == job_id, JobEvent.id > after_id)
        for job_id, after_id in after.items()
    ]
    stmt = select(JobEvent).where(or_(*newer)).order_by(JobEvent.id).limit(limit)
    return list(session.scalars(stmt))


def job_statuses(session: Session, *, job_ids: Collection[str]) -> dict[str, str]:
    """``{job id: status}`` of the jobs that exist among ``job_ids``."""
    if not job_ids:
        return {}
    rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids)))
    return {job_id: status for job_id, status in rows}


def status_event_data(job: Job) -> dict[str, Any]:
    return {
        "status": job.status,
        "failure_reason": job.failure_reason,
        "progress": job.progress,
        "trials_done": job.trials_done,
        "trials_total": job.trials_total,
    }


def trial_event_data(trial: Trial) -> dict[str, Any]:
    return {
        "id": trial.id,
        "trial_key": trial.trial_key,
        "method": trial.method,
        "seed": trial.seed,
        "status": trial.status,
        "failure_reason": trial.failure_reason,
        "epochs_done": trial.epochs_done,
        "best_epoch": trial.best_epoch,
        "metrics": trial.metrics,
    }
