"""Liveness and readiness (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from infra.broker import TaskProducer
from infra.db import crud
from infra.storage import ArtifactStore

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process answers (touches nothing else)."""
    return {"status": "ok"}


def _check_database(factory: sessionmaker[Session]) -> str | None:
    try:
        with factory() as session:
            crud.ping(session)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


@router.get("/ready", responses={503: {"description": "A dependency is not ready"}})
def ready(request: Request) -> JSONResponse:
    """Readiness: database query, broker (its queue can be read), artifact store writable.

    503 with ``checks`` naming the failing part.
    """
    state = request.app.state
    producer: TaskProducer = state.producer
    store: ArtifactStore = state.store
    problems = {
        "database": _check_database(state.session_factory),
        "broker": producer.check(),
        "artifact_store": None if store.is_writable() else "artifact folder not writable",
    }
    checks = {name: problem or "ok" for name, problem in problems.items()}
    failing = any(problems.values())
    body = {"status": "unavailable" if failing else "ready", "checks": checks}
    return JSONResponse(body, status_code=503 if failing else 200)
