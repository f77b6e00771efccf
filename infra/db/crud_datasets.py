"""Reads and writes of datasets (uploaded or built-in); each writing function commits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from infra.db.crud_jobs import SendState
from infra.db.models import JOB_ACTIVE, Dataset, DatasetStatus, Job, utcnow


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
) -> bool:
    """Fill a generated dataset's file facts and mark it ready (path relative to the store);
    only a still-pending row changes. False when none did (deleted meanwhile): the caller
    removes the file it made."""
    result = session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id, Dataset.status == DatasetStatus.PENDING)
        .values(
            status=DatasetStatus.READY,
            error=None,
            path=path,
            sha256=sha256,
            size_bytes=size_bytes,
            summary=summary,
        )
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


def mark_dataset_failed(session: Session, *, dataset_id: str, error: str) -> None:
    session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(status=DatasetStatus.FAILED, error=error)
    )
    session.commit()


def dataset_in_use(session: Session, *, dataset_id: str) -> bool:
    """True while a queued/running/cancelling job uses the dataset."""
    stmt = (
        select(func.count())
        .select_from(Job)
        .where(Job.dataset_id == dataset_id, Job.status.in_(JOB_ACTIVE))
    )
    return bool(session.scalar(stmt))


def delete_dataset(session: Session, *, dataset_id: str) -> str | None:
    """Delete the row; returns its file's relative path as it was when deleted (locked and
    read afresh: a worker may have just stored the file), None if it had none."""
    row = session.execute(
        select(Dataset)
        .where(Dataset.id == dataset_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        session.rollback()
        return None
    path = row.path
    session.delete(row)
    session.commit()
    return path


def find_ready_dataset_by_sha256(session: Session, *, owner_id: str, sha256: str) -> Dataset | None:
    """The owner's oldest ready dataset whose file has this sha256 (never another user's)."""
    stmt = (
        select(Dataset)
        .where(
            Dataset.owner_id == owner_id,
            Dataset.sha256 == sha256,
            Dataset.status == DatasetStatus.READY,
        )
        .order_by(Dataset.created_at, Dataset.id)
        .limit(1)
    )
    return session.scalars(stmt).first()


def mark_dataset_sent(session: Session, *, dataset_id: str) -> None:
    """Record that the housekeeping sent ``synib.make_dataset(dataset_id)`` again, now."""
    session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(last_sent_at=utcnow(), send_count=Dataset.send_count + 1)
    )
    session.commit()


def list_pending_dataset_sends(session: Session) -> list[SendState]:
    """The send state of every pending built-in dataset that no active job uses (``run_job``
    generates its job's dataset itself), oldest first."""
    used = select(Job.dataset_id).where(Job.status.in_(JOB_ACTIVE), Job.dataset_id.is_not(None))
    stmt = (
        select(Dataset.id, Dataset.created_at, Dataset.last_sent_at, Dataset.send_count)
        .where(
            Dataset.status == DatasetStatus.PENDING,
            Dataset.source == "builtin",
            Dataset.id.not_in(used),
        )
        .order_by(Dataset.created_at)
    )
    return [SendState(*row) for row in session.execute(stmt)]


def set_dataset_pid(session: Session, *, dataset_id: str, pid: dict[str, Any]) -> None:
    """Store the dataset's PID state (``Dataset.pid``) as given; commits."""
    session.execute(update(Dataset).where(Dataset.id == dataset_id).values(pid=pid))
    session.commit()


def claim_dataset_pid(session: Session, *, dataset_id: str) -> dict[str, Any] | None:
    """Mark a requested PID ``running`` and return its state, or None (and change nothing)
    when none is waiting: no row, no request, or already finished. A ``running`` one is taken
    again (a redelivered message after a worker died); commits."""
    row = session.execute(
        select(Dataset).where(Dataset.id == dataset_id).with_for_update()
    ).scalar_one_or_none()
    state = dict(row.pid or {}) if row is not None else {}
    if row is None or state.get("status") not in ("queued", "running"):
        session.rollback()
        return None
    state["status"] = "running"
    row.pid = state
    session.commit()
    return state


def list_queued_dataset_pids(session: Session) -> list[SendState]:
    """The send state of every dataset whose PID is requested and not yet taken by a worker
    (``pid.status`` queued), oldest request first: the housekeeping re-sends a lost message."""
    rows = session.execute(select(Dataset.id, Dataset.pid).where(Dataset.pid.is_not(None)))
    states = []
    for dataset_id, pid in rows:
        if not pid or pid.get("status") != "queued" or not pid.get("requested_at"):
            continue
        sent = pid.get("last_sent_at")
        states.append(
            SendState(
                dataset_id,
                _aware(datetime.fromisoformat(pid["requested_at"])),
                None if sent is None else _aware(datetime.fromisoformat(sent)),
                int(pid.get("send_count") or 0),
            )
        )
    return sorted(states, key=lambda s: s.waiting_since)


def mark_dataset_pid_sent(session: Session, *, dataset_id: str) -> None:
    """Record that the housekeeping sent ``synib.dataset_pid(dataset_id)`` again, now (only
    while the PID is still queued); commits."""
    row = session.execute(
        select(Dataset).where(Dataset.id == dataset_id).with_for_update()
    ).scalar_one_or_none()
    state = dict(row.pid or {}) if row is not None else {}
    if row is None or state.get("status") != "queued":
        session.rollback()
        return
    state["last_sent_at"] = utcnow().isoformat()
    state["send_count"] = int(state.get("send_count") or 0) + 1
    row.pid = state
    session.commit()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
