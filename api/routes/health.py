"""Liveness and readiness (no authentication)."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from infra.broker import TaskProducer
from infra.db import crud
from infra.db.models import utcnow
from infra.settings import Settings
from infra.storage import Store

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

NO_WORKERS = "none serving: jobs stay queued"


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers (touches nothing else)."""
    return {"status": "ok"}


def _database_and_workers(factory: sessionmaker[Session], settings: Settings) -> tuple[str, str]:
    """(database check, workers check): the workers whose presence is fresh."""
    since = utcnow() - timedelta(seconds=settings.worker_presence_stale_s)
    try:
        with factory() as session:
            crud.ping(session)
            serving = crud.count_workers_seen_since(session, since=since)
    except Exception:
        log.warning("readiness: the database does not answer", exc_info=True)
        return "unavailable", "unknown"
    return "ok", f"ok: {serving} serving" if serving else NO_WORKERS


def _broker(producer: TaskProducer) -> str:
    problem = producer.check()
    if problem is None:
        return "ok"
    log.warning("readiness: the broker does not answer: %s", problem)
    return "unavailable"


def _artifact_store(store: Store) -> str:
    """Whether the artifact store takes writes: a local folder is asked of the OS (no file is
    written; the folder itself is made once if missing), a bucket gets a probe object written
    and deleted."""
    if store.is_ready():
        return "ok"
    log.warning("readiness: the artifact store %s is not writable", store.location)
    return "not writable"


@router.get("/ready", responses={503: {"description": "A dependency is not ready"}})
def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers, the broker's queue can be read, the artifact store
    takes writes (503, ``status: unavailable``, when one is not). ``checks.workers`` counts the
    training workers consuming the queue; with none, the answer stays 200 (this API still
    takes requests) with ``status: degraded``: new jobs stay queued until a worker starts.
    Failures are named, their details only logged."""
    state = request.app.state
    database, workers = _database_and_workers(state.session_factory, state.settings)
    checks = {
        "database": database,
        "broker": _broker(state.producer),
        "artifact_store": _artifact_store(state.store),
        "workers": workers,
    }
    if any(checks[name] != "ok" for name in ("database", "broker", "artifact_store")):
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    status = "ready" if workers.startswith("ok") else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200)
