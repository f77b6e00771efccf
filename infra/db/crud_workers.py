"""The presence rows of the training workers (table ``workers``): written by each worker,
counted by ``GET /ready``; the models they offer feed ``GET /api/v1/models``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from infra.db.models import WorkerPresence, utcnow


def record_worker(
    session: Session,
    *,
    name: str,
    hostname: str,
    pid: int,
    models: Sequence[dict[str, Any]] = (),
) -> None:
    """Insert or renew the presence row of worker ``name`` (``last_seen_at`` now) with the
    models it offers (``ModelInfo.to_json()`` each); commits."""
    now = utcnow()
    row = session.get(WorkerPresence, name)
    if row is None or row.pid != pid:
        if row is not None:
            session.delete(row)
            session.flush()
        session.add(
            WorkerPresence(
                name=name,
                hostname=hostname,
                pid=pid,
                started_at=now,
                last_seen_at=now,
                models=list(models),
            )
        )
    else:
        row.last_seen_at = now
        if row.models != list(models):
            row.models = list(models)
    session.commit()


def remove_worker(session: Session, *, name: str, pid: int) -> None:
    """Delete worker ``name``'s row if this process (``pid``) wrote it; commits."""
    session.execute(
        delete(WorkerPresence).where(WorkerPresence.name == name, WorkerPresence.pid == pid)
    )
    session.commit()


def count_workers_seen_since(session: Session, *, since: datetime) -> int:
    """Workers whose presence was renewed at or after ``since``."""
    query = select(func.count()).select_from(WorkerPresence)
    return int(session.scalar(query.where(WorkerPresence.last_seen_at >= since)) or 0)


def list_worker_models(session: Session, *, since: datetime | None) -> list[list[dict[str, Any]]]:
    """The models list of every worker seen at or after ``since`` (None: every row)."""
    query = select(WorkerPresence.models)
    if since is not None:
        query = query.where(WorkerPresence.last_seen_at >= since)
    return [list(models or []) for models in session.scalars(query)]
