"""All database reads and writes, keyword-only: users, tokens, datasets and artifacts here; jobs
(``crud_jobs``), trials and epochs (``crud_trials``) and events (``crud_events``) re-exported, so
callers use ``crud.<name>``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from infra.db.crud_events import (
    add_event,
    list_events,
    status_event_data,
    trial_event_data,
)
from infra.db.crud_jobs import (
    claim_job,
    count_jobs_by_status,
    create_job,
    delete_job,
    get_job,
    heartbeat,
    list_jobs,
    list_jobs_needing_resumption,
    new_job,
    request_cancel,
    requeue_failed,
    set_job_references,
    set_job_report,
    set_job_status,
    set_job_task_id,
)
from infra.db.crud_trials import (
    get_trial,
    list_epoch_metrics,
    list_job_epoch_metrics,
    list_trials,
    list_trials_of_jobs,
    set_trial_status,
    upsert_epoch_metrics,
    upsert_trial,
)
from infra.db.models import JOB_ACTIVE, ApiToken, Artifact, Dataset, Job, User, utcnow

__all__ = [
    "add_artifact",
    "add_event",
    "claim_job",
    "count_jobs_by_status",
    "create_dataset",
    "create_job",
    "create_token",
    "create_user",
    "dataset_in_use",
    "delete_dataset",
    "delete_job",
    "get_artifact",
    "get_dataset",
    "get_job",
    "get_token_and_user",
    "get_token_by_hash",
    "get_trial",
    "get_user",
    "get_user_by_name",
    "heartbeat",
    "list_artifacts",
    "list_datasets",
    "list_epoch_metrics",
    "list_events",
    "list_job_epoch_metrics",
    "list_jobs",
    "list_jobs_needing_resumption",
    "list_tokens",
    "list_trials",
    "list_trials_of_jobs",
    "mark_dataset_failed",
    "mark_dataset_ready",
    "new_job",
    "request_cancel",
    "requeue_failed",
    "revoke_token",
    "set_job_references",
    "set_job_report",
    "set_job_status",
    "set_job_task_id",
    "set_trial_status",
    "status_event_data",
    "touch_token",
    "trial_event_data",
    "upsert_epoch_metrics",
    "upsert_trial",
]


# ---- users and tokens -------------------------------------------------------------------


def create_user(
    session: Session, *, name: str, is_admin: bool = False, commit: bool = True
) -> User:
    """A new user; ``commit=False`` only flushes it (its id is set), for a caller that commits
    it together with what it adds next (``issue_token``: a user and its first token)."""
    user = User(name=name, is_admin=is_admin, created_at=utcnow())
    session.add(user)
    if commit:
        session.commit()
    else:
        session.flush()
    return user


def get_user(session: Session, *, user_id: str) -> User | None:
    return session.get(User, user_id)


def get_user_by_name(session: Session, *, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).first()


def create_token(
    session: Session,
    *,
    user_id: str,
    name: str,
    token_hash: str,
    prefix: str,
    expires_at: datetime | None = None,
) -> ApiToken:
    """Store a token by its sha256 hex hash (the plain token is never stored)."""
    token = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=token_hash,
        prefix=prefix,
        expires_at=expires_at,
        created_at=utcnow(),
    )
    session.add(token)
    session.commit()
    return token


def get_token_by_hash(session: Session, *, token_hash: str) -> ApiToken | None:
    return session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()


def get_token_and_user(session: Session, *, token_hash: str) -> tuple[ApiToken, User] | None:
    """The token with this hash and its user, in one query (every authenticated request)."""
    stmt = (
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash)
    )
    row = session.execute(stmt).first()
    return None if row is None else (row[0], row[1])


def list_tokens(session: Session, *, user_id: str) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at)
    return list(session.scalars(stmt))


def revoke_token(session: Session, *, token_id: str) -> bool:
    """Mark the token revoked now; False when it does not exist or was already revoked."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()
    return getattr(result, "rowcount", 0) == 1


def touch_token(session: Session, *, token_id: str) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
    session.commit()


# ---- datasets ---------------------------------------------------------------------------


def create_dataset(
    session: Session,
    *,
    owner_id: str,
    name: str,
    source: str,
    status: str,
    builtin_name: str | None = None,
    params: dict[str, Any] | None = None,
    path: str | None = None,
    sha256: str | None = None,
    size_bytes: int | None = None,
    summary: dict[str, Any] | None = None,
    dataset_id: str | None = None,
) -> Dataset:
    """Insert a dataset row (source upload|builtin, status pending|ready|failed); commits."""
    row = Dataset(
        owner_id=owner_id,
        name=name,
        source=source,
        status=status,
        builtin_name=builtin_name,
        params=params or {},
        path=path,
        sha256=sha256,
        size_bytes=size_bytes,
        summary=summary,
        created_at=utcnow(),
    )
    if dataset_id is not None:
        row.id = dataset_id
    session.add(row)
    session.commit()
    return row


def get_dataset(
    session: Session, *, dataset_id: str, owner_id: str | None = None
) -> Dataset | None:
    row = session.get(Dataset, dataset_id)
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        return None
    return row


def list_datasets(
    session: Session, *, owner_id: str, limit: int = 50, offset: int = 0
) -> tuple[list[Dataset], int]:
    where = Dataset.owner_id == owner_id
    count = session.scalar(select(func.count()).select_from(Dataset).where(where)) or 0
    stmt = (
        select(Dataset)
        .where(where)
        .order_by(Dataset.created_at.desc(), Dataset.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(stmt)), count


def mark_dataset_ready(
    session: Session,
    *,
    dataset_id: str,
    path: str,
    sha256: str,
    size_bytes: int,
    summary: dict[str, Any],
) -> None:
    """Fill a generated dataset's file facts and mark it ready (path relative to the store)."""
    session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(
            status="ready",
            error=None,
            path=path,
            sha256=sha256,
            size_bytes=size_bytes,
            summary=summary,
        )
    )
    session.commit()


def mark_dataset_failed(session: Session, *, dataset_id: str, error: str) -> None:
    session.execute(
        update(Dataset).where(Dataset.id == dataset_id).values(status="failed", error=error)
    )
    session.commit()


def dataset_in_use(session: Session, *, dataset_id: str) -> bool:
    """True while a queued/running/cancelling job uses the dataset."""
    stmt = (
        select(func.count())
        .select_from(Job)
        .where(Job.dataset_id == dataset_id, Job.status.in_(tuple(JOB_ACTIVE)))
    )
    return bool(session.scalar(stmt))


def delete_dataset(session: Session, *, dataset_id: str) -> str | None:
    """Delete the row; returns its file's relative path (None if it had none)."""
    row = session.get(Dataset, dataset_id)
    if row is None:
        return None
    path = row.path
    session.delete(row)
    session.commit()
    return path


# ---- artifacts --------------------------------------------------------------------------


def add_artifact(
    session: Session,
    *,
    owner_id: str,
    job_id: str,
    kind: str,
    name: str,
    path: str,
    sha256: str,
    size_bytes: int,
    trial_id: str | None = None,
) -> Artifact:
    """Register a file already in the artifact store (path relative to its root)."""
    row = Artifact(
        owner_id=owner_id,
        job_id=job_id,
        trial_id=trial_id,
        kind=kind,
        name=name,
        path=path,
        sha256=sha256,
        size_bytes=size_bytes,
        created_at=utcnow(),
    )
    session.add(row)
    session.commit()
    return row


def get_artifact(
    session: Session, *, artifact_id: str, owner_id: str | None = None
) -> Artifact | None:
    row = session.get(Artifact, artifact_id)
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        return None
    return row


def list_artifacts(session: Session, *, job_id: str) -> list[Artifact]:
    stmt = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.created_at)
    return list(session.scalars(stmt))
