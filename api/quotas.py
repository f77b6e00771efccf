"""Per-user quotas (docs/USER_GUIDE.md, "Limits and quotas"): each check raises an
``HTTPException`` whose detail names the limit, its setting and what the user holds now.

- active jobs (queued, running, cancelling) -> 429 with Retry-After (a job ending frees a place);
- storage (dataset files and job artifacts) -> 413;
- datasets -> 409 (delete one first).

The job check locks the user's row (PostgreSQL) until the request commits its job, so that
two submissions of one user take turns; the dataset check does not (an upload streams for
minutes): concurrent uploads of one user may each pass it.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from infra.db import crud
from infra.settings import Settings

ACTIVE_JOBS_RETRY_AFTER_S = 60


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 1024 / 1024:.1f} MiB"


def check_active_jobs(session: Session, settings: Settings, user_id: str) -> None:
    """429 when the user already has ``max_active_jobs_per_user`` active jobs."""
    limit = settings.max_active_jobs_per_user
    active = crud.count_active_jobs(session, owner_id=user_id)
    if active >= limit:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"limit max_active_jobs_per_user: you have {active} queued or running jobs, "
            f"at most {limit} allowed; wait for one to end or cancel one",
            headers={"Retry-After": str(ACTIVE_JOBS_RETRY_AFTER_S)},
        )


def check_storage(session: Session, settings: Settings, user_id: str) -> None:
    """413 when the user's datasets and artifacts already fill ``max_storage_mb_per_user``."""
    limit = settings.max_storage_bytes_per_user
    used = crud.storage_bytes(session, owner_id=user_id)
    if used >= limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"limit max_storage_mb_per_user: your datasets and job artifacts take "
            f"{_mib(used)}, at most {settings.max_storage_mb_per_user:g} MiB allowed; delete "
            "datasets or jobs first",
        )


def check_dataset_quotas(session: Session, settings: Settings, user_id: str) -> None:
    """Before a new dataset: 409 at ``max_datasets_per_user`` datasets, 413 when storage is
    full. Ends the read transaction (nothing stays open while an upload streams)."""
    limit = settings.max_datasets_per_user
    count = crud.count_datasets(session, owner_id=user_id)
    if count >= limit:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"limit max_datasets_per_user: you have {count} datasets, at most {limit} "
            "allowed; delete one first",
        )
    check_storage(session, settings, user_id)
    session.rollback()


def check_job_quotas(session: Session, settings: Settings, user_id: str) -> None:
    """Before a job is queued (submitted or rerun): active jobs (429), storage (413). The user's
    row stays locked until the caller commits."""
    crud.lock_user(session, user_id=user_id)
    check_active_jobs(session, settings, user_id)
    check_storage(session, settings, user_id)
