"""Database writes the worker needs that ``infra.db.crud`` does not offer (built on its models)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from infra.db import crud
from infra.db.models import Artifact, Job, Trial, utcnow
from infra.db.session import make_engine, make_session_factory

SessionFactory = Callable[[], Session]
"""A zero-argument callable returning a new session (a ``sessionmaker``)."""


@lru_cache(maxsize=4)
def session_factory(database_url: str) -> sessionmaker[Session]:
    """One engine (and session factory) per database URL and process."""
    return make_session_factory(make_engine(database_url))


def set_trials_total(session: Session, *, job_id: str, trials_total: int) -> None:
    """Set the planned number of trials (the API's estimate may differ from the plan)."""
    session.execute(update(Job).where(Job.id == job_id).values(trials_total=trials_total))
    session.commit()


def unfinished_reason(job_reason: str | None) -> str:
    """The failure reason of a trial still open when its job ends (with the job's, if any)."""
    base = "the job ended before this trial finished"
    return f"{base}: {job_reason}" if job_reason else base


def close_open_trials(
    session: Session, *, job_id: str, status: str, reason: str | None = None
) -> int:
    """Move the job's pending/running trials to ``status`` (with events); returns how many."""
    open_trials = list(
        session.scalars(
            select(Trial).where(Trial.job_id == job_id, Trial.status.in_(("pending", "running")))
        )
    )
    for trial in open_trials:
        crud.set_trial_status(session, trial_id=trial.id, status=status, failure_reason=reason)
    return len(open_trials)


def model_artifact_of(session: Session, *, trial_id: str) -> Artifact | None:
    """The trial's model artifact if it was registered already (a rerun keeps it)."""
    stmt = select(Artifact).where(Artifact.trial_id == trial_id, Artifact.kind == "model")
    return session.scalars(stmt).first()


def report_artifact_of(session: Session, *, job_id: str) -> Artifact | None:
    stmt = select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == "report")
    return session.scalars(stmt).first()


def replace_artifact_file(
    session: Session, *, artifact: Artifact, sha256: str, size_bytes: int
) -> None:
    """Point an existing artifact row at new file contents (the report of a rerun)."""
    artifact.sha256 = sha256
    artifact.size_bytes = size_bytes
    artifact.created_at = utcnow()
    session.commit()
