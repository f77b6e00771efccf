"""All database reads and writes (every SQL statement of the service), keyword-only: users and
tokens here; datasets (``crud_datasets``), jobs (``crud_jobs``), a job's lease and its
housekeeping (``crud_lease``), the fair queue and what a user holds (``crud_queue``), trials
and epochs (``crud_trials``), the feature cache (``crud_features``), artifacts (``crud_artifacts``) and events (``crud_events``)
re-exported, so callers use ``crud.<name>``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from infra.db.crud_artifacts import (
    add_artifact,
    get_artifact,
    list_artifacts,
    model_artifact_of,
    replace_artifact_file,
    report_artifact_of,
)
from infra.db.crud_datasets import (
    claim_dataset_pid,
    create_dataset,
    dataset_in_use,
    delete_dataset,
    find_ready_dataset_by_sha256,
    get_dataset,
    list_datasets,
    list_pending_dataset_sends,
    list_queued_dataset_pids,
    mark_dataset_failed,
    mark_dataset_pid_sent,
    mark_dataset_ready,
    mark_dataset_sent,
    set_dataset_pid,
)
from infra.db.crud_events import (
    add_event,
    job_statuses,
    list_events,
    list_events_of_jobs,
    status_event_data,
    trial_event_data,
)
from infra.db.crud_features import (
    add_feature,
    feature_paths_only_of,
    find_feature,
    get_dataset_features,
)
from infra.db.crud_jobs import (
    SendState,
    count_jobs_by_status,
    create_job,
    delete_job,
    get_job,
    list_job_headlines,
    list_jobs,
    list_queued_job_sends,
    mark_job_sent,
    new_job,
    request_cancel,
    requeue_failed,
    set_job_references,
    set_job_report,
    set_job_status,
    set_job_task_id,
    set_trials_total,
)
from infra.db.crud_lease import (
    beat_job,
    cancel_expired_lease,
    claim_job,
    heartbeat,
    job_status_and_worker,
    list_expired_leases,
    owns_job,
    requeue_expired_lease,
)
from infra.db.crud_queue import (
    claim_next_job,
    count_active_jobs,
    count_datasets,
    fair_queue,
    lock_user,
    storage_bytes,
)
from infra.db.crud_trials import (
    close_open_trials,
    get_trial,
    list_epoch_metrics,
    list_job_epoch_metrics,
    list_trials,
    list_trials_of_jobs,
    set_trial_status,
    unfinished_reason,
    upsert_epoch_metrics,
    upsert_trial,
)
from infra.db.crud_workers import (
    count_workers_seen_since,
    list_worker_models,
    record_worker,
    remove_worker,
)
from infra.db.models import ApiToken, User, utcnow

__all__ = [
    "SendState",
    "add_artifact",
    "add_event",
    "add_feature",
    "beat_job",
    "cancel_expired_lease",
    "claim_dataset_pid",
    "claim_job",
    "claim_next_job",
    "close_open_trials",
    "count_active_jobs",
    "count_datasets",
    "count_jobs_by_status",
    "count_workers_seen_since",
    "create_dataset",
    "create_job",
    "create_token",
    "create_user",
    "dataset_in_use",
    "delete_dataset",
    "delete_job",
    "fair_queue",
    "feature_paths_only_of",
    "find_feature",
    "find_ready_dataset_by_sha256",
    "get_artifact",
    "get_dataset",
    "get_dataset_features",
    "get_job",
    "get_token_and_user",
    "get_token_by_hash",
    "get_trial",
    "get_user",
    "get_user_by_name",
    "heartbeat",
    "job_status_and_worker",
    "job_statuses",
    "list_artifacts",
    "list_datasets",
    "list_epoch_metrics",
    "list_events",
    "list_events_of_jobs",
    "list_expired_leases",
    "list_job_epoch_metrics",
    "list_job_headlines",
    "list_jobs",
    "list_pending_dataset_sends",
    "list_queued_dataset_pids",
    "list_queued_job_sends",
    "list_tokens",
    "list_trials",
    "list_trials_of_jobs",
    "list_worker_models",
    "lock_user",
    "mark_dataset_failed",
    "mark_dataset_pid_sent",
    "mark_dataset_ready",
    "mark_dataset_sent",
    "mark_job_sent",
    "model_artifact_of",
    "new_job",
    "owns_job",
    "ping",
    "record_worker",
    "remove_worker",
    "replace_artifact_file",
    "report_artifact_of",
    "request_cancel",
    "requeue_expired_lease",
    "requeue_failed",
    "revoke_token",
    "set_dataset_pid",
    "set_job_references",
    "set_job_report",
    "set_job_status",
    "set_job_task_id",
    "set_trial_status",
    "set_trials_total",
    "status_event_data",
    "storage_bytes",
    "touch_token",
    "trial_event_data",
    "unfinished_reason",
    "upsert_epoch_metrics",
    "upsert_trial",
]


def ping(session: Session) -> None:
    """One round trip to the database (readiness); raises when it cannot be reached."""
    session.execute(text("SELECT 1"))


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
