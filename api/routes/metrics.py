"""Prometheus metrics (text exposition format)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import CurrentUser, ProducerDep, SessionDep
from api.errors import AUTH_ERRORS
from api.observability import ApiMetrics
from infra.db import crud

router = APIRouter(tags=["metrics"], responses=AUTH_ERRORS)


@router.get("/metrics", response_class=Response)
def metrics(
    request: Request, user: CurrentUser, session: SessionDep, producer: ProducerDep
) -> Response:
    """Request counts/latency by route template and status, the queue depth, and jobs by
    status: every user's for an admin token, the token's user's own otherwise."""
    registry: ApiMetrics = request.app.state.metrics
    owner_id = None if user.is_admin else user.id
    jobs = crud.count_jobs_by_status(session, owner_id=owner_id)
    body = registry.render(jobs, producer.queue_depth())
    return Response(body, media_type=CONTENT_TYPE_LATEST)
