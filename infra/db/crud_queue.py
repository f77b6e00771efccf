"""Who runs next, and what a user holds: the fair claim of a queued job (docs/ARCHITECTURE.md,
"Fair scheduling") and the counts the API's quotas compare with their limits.

The fair order of the queued jobs whose owner runs fewer than ``max_running`` jobs: the owner
with the fewest running (or cancelling) jobs first, then the owner whose last job started
longest ago (never: first), then the oldest job. The claim moves the first of them
``queued -> running`` atomically, the owner's cap included: on PostgreSQL the owner's row is
locked while their running jobs are counted and the job is claimed; on SQLite the one guarded
UPDATE (the count is inside it) is atomic.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.db.crud_lease import claim_job
from infra.db.models import JOB_ACTIVE, JOB_LEASED, Artifact, Dataset, Job, JobStatus, User

CANDIDATES = 10  # queued jobs tried per claim (another worker may take the first ones)


def fair_queue(session: Session, *, max_running: int, limit: int = CANDIDATES) -> list[str]:
    """Ids of the queued jobs a worker may start now, in the fair order (module docstring)."""
    leased = (
        select(Job.owner_id, func.count().label("n"))
        .where(Job.status.in_(JOB_LEASED))
        .group_by(Job.owner_id)
        .subquery()
    )
    served = (
        select(Job.owner_id, func.max(Job.started_at).label("at")).group_by(Job.owner_id).subquery()
    )
    running = func.coalesce(leased.c.n, 0)
    stmt = (
        select(Job.id)
        .outerjoin(leased, leased.c.owner_id == Job.owner_id)
        .outerjoin(served, served.c.owner_id == Job.owner_id)
        .where(Job.status == JobStatus.QUEUED, running < max_running)
        .order_by(running, served.c.at.asc().nulls_first(), Job.created_at, Job.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def claim_next_job(session: Session, *, worker: str, max_running: int) -> Job | None:
    """Claim the first job of the fair queue for ``worker`` (None when no queued job may start
    now); safe against other workers claiming at the same time."""
    for job_id in fair_queue(session, max_running=max_running):
        session.rollback()  # end the read: the claim starts its own transaction
        job = claim_job(session, job_id=job_id, worker=worker, max_running=max_running)
        if job is not None:
            return job
    return None


# ---- what a user holds (the API's quotas) -------------------------------------------------


def lock_user(session: Session, *, user_id: str) -> None:
    """Lock the user's row until the transaction ends (PostgreSQL): two requests of one user
    that check a quota and then add to it take turns."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def count_active_jobs(session: Session, *, owner_id: str) -> int:
    """The owner's queued, running and cancelling jobs."""
    stmt = select(func.count()).where(Job.owner_id == owner_id, Job.status.in_(JOB_ACTIVE))
    return int(session.scalar(stmt) or 0)


def count_datasets(session: Session, *, owner_id: str) -> int:
    return int(session.scalar(select(func.count()).where(Dataset.owner_id == owner_id)) or 0)


def storage_bytes(session: Session, *, owner_id: str) -> int:
    """Bytes of the owner's dataset files and job artifacts."""
    datasets = select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
        Dataset.owner_id == owner_id
    )
    artifacts = select(func.coalesce(func.sum(Artifact.size_bytes), 0)).where(
        Artifact.owner_id == owner_id
    )
    return int(session.scalar(datasets) or 0) + int(session.scalar(artifacts) or 0)
