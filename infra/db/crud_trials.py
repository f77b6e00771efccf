"""Reads and writes of trials and their per-epoch metrics (each write appends a job event)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from infra.db.crud_events import add_event, trial_event_data
from infra.db.crud_jobs import get_job, refresh_job_progress
from infra.db.models import (
    TRIAL_OPEN,
    TRIAL_TERMINAL,
    EpochMetric,
    Job,
    Trial,
    TrialStatus,
    utcnow,
)


def upsert_trial(
    session: Session,
    *,
    job_id: str,
    trial_key: str,
    method: str,
    seed: int,
    config: dict[str, Any],
) -> Trial:
    """The trial with this key (created pending with an event if new); commits."""
    trial = session.scalars(
        select(Trial).where(Trial.job_id == job_id, Trial.trial_key == trial_key)
    ).first()
    if trial is not None:
        return trial
    trial = Trial(job_id=job_id, trial_key=trial_key, method=method, seed=seed, config=config)
    trial.status = TrialStatus.PENDING
    trial.epochs_done = 0
    trial.metrics = {}
    session.add(trial)
    session.flush()
    add_event(session, job_id=job_id, type="trial", data=trial_event_data(trial), commit=False)
    session.commit()
    return trial


def set_trial_status(
    session: Session,
    *,
    trial_id: str,
    status: str,
    failure_reason: str | None = None,
    metrics: dict[str, Any] | None = None,
    best_epoch: int | None = None,
    commit: bool = True,
) -> Trial | None:
    """Update a trial (times, metrics of the selected epoch), the job's counters, an event;
    ``commit=False`` leaves the commit to a caller that changes more in the same transaction."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        return None
    now = utcnow()
    trial.status = status
    trial.failure_reason = failure_reason
    if metrics is not None:
        trial.metrics = metrics
    if best_epoch is not None:
        trial.best_epoch = best_epoch
    if status == TrialStatus.RUNNING and trial.started_at is None:
        trial.started_at = now
    if status in TRIAL_TERMINAL:
        trial.finished_at = now
    job = session.get(Job, trial.job_id)
    session.flush()
    if job is not None:
        refresh_job_progress(session, job)
    add_event(
        session, job_id=trial.job_id, type="trial", data=trial_event_data(trial), commit=False
    )
    if commit:
        session.commit()
    return trial


def unfinished_reason(job_reason: str | None) -> str:
    """The failure reason of a trial still open when its job ends (with the job's, if any)."""
    base = "the job ended before this trial finished"
    return f"{base}: {job_reason}" if job_reason else base


def close_open_trials(
    session: Session, *, job_id: str, status: str, reason: str | None = None
) -> int:
    """Move the job's pending/running trials to ``status`` (with events; each commits);
    returns how many."""
    stmt = select(Trial.id).where(Trial.job_id == job_id, Trial.status.in_(TRIAL_OPEN))
    open_ids = list(session.scalars(stmt))
    for trial_id in open_ids:
        set_trial_status(session, trial_id=trial_id, status=status, failure_reason=reason)
    return len(open_ids)


def _insert_for(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def upsert_epoch_metrics(
    session: Session, *, trial_id: str, epoch: int, metrics: dict[str, Any]
) -> None:
    """Insert or replace the metrics of (trial, epoch) (1-based); bumps epochs_done; event."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise LookupError(f"trial {trial_id} not found")
    insert = _insert_for(session)
    stmt = insert(EpochMetric).values(
        trial_id=trial_id, epoch=epoch, metrics=metrics, created_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["trial_id", "epoch"], set_={"metrics": stmt.excluded.metrics}
    )
    session.execute(stmt)
    trial.epochs_done = max(trial.epochs_done or 0, epoch)
    data = {"trial_id": trial_id, "trial_key": trial.trial_key, "epoch": epoch, "metrics": metrics}
    add_event(session, job_id=trial.job_id, type="epoch", data=data, commit=False)
    session.commit()


def get_trial(session: Session, *, trial_id: str, owner_id: str | None = None) -> Trial | None:
    """The trial, or None (also when its job is not owner_id's)."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        return None
    if owner_id is not None and get_job(session, job_id=trial.job_id, owner_id=owner_id) is None:
        return None
    return trial


def list_trials(session: Session, *, job_id: str, status: str | None = None) -> list[Trial]:
    where = [Trial.job_id == job_id]
    if status is not None:
        where.append(Trial.status == status)
    return list(session.scalars(select(Trial).where(*where).order_by(Trial.trial_key)))


def list_trials_of_jobs(session: Session, *, job_ids: list[str], status: str) -> list[Trial]:
    if not job_ids:
        return []
    stmt = select(Trial).where(Trial.job_id.in_(job_ids), Trial.status == status)
    return list(session.scalars(stmt))


def list_epoch_metrics(session: Session, *, trial_id: str) -> list[EpochMetric]:
    stmt = select(EpochMetric).where(EpochMetric.trial_id == trial_id).order_by(EpochMetric.epoch)
    return list(session.scalars(stmt))


def list_job_epoch_metrics(session: Session, *, job_id: str) -> list[tuple[str, int, str]]:
    """``(trial_id, epoch, metrics as stored JSON text)`` of every trial of the job, ordered by
    trial and epoch.

    The metrics stay text: a job holds thousands of epoch rows, and decoding them into dicts
    only to encode them again for ``GET /jobs/{id}/metrics`` cost most of that request.
    """
    stmt = (
        select(EpochMetric.trial_id, EpochMetric.epoch, cast(EpochMetric.metrics, Text))
        .join(Trial, Trial.id == EpochMetric.trial_id)
        .where(Trial.job_id == job_id)
        .order_by(EpochMetric.trial_id, EpochMetric.epoch)
    )
    return [(str(t), int(e), str(m)) for t, e, m in session.execute(stmt)]
