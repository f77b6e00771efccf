"""Server-Sent Events of a job, read from ``job_events`` (polling, Last-Event-ID aware)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, PathId, session_factory_of
from api.errors import AUTH_ERRORS, NOT_FOUND, not_found
from api.schemas.common import MAX_SQL_INT
from infra.db import crud
from infra.db.models import JOB_TERMINAL

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)

BATCH = 500
_EVENT_ID = re.compile(r"[0-9]{1,12}")
_StreamState = tuple[list[tuple[int, str, dict[str, Any]]], str | None]


def format_event(event_id: int, event_type: str, data: dict[str, Any]) -> str:
    """One SSE message: ``id``, ``event`` and one ``data`` line of compact JSON."""
    payload = json.dumps(data, separators=(",", ":"), default=str)
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload}\n\n"


def _poll(factory: sessionmaker[Session], job_id: str, after_id: int) -> _StreamState:
    """(events after ``after_id``, the job's status read first; None if the job is gone)."""
    with factory() as session:
        job = crud.get_job(session, job_id=job_id)
        status = job.status if job is not None else None
        rows = crud.list_events(session, job_id=job_id, after_id=after_id, limit=BATCH)
        return [(r.id, r.type, r.data) for r in rows], status


async def _stream(request: Request, job_id: str, after_id: int) -> AsyncIterator[str]:
    factory = session_factory_of(request)
    poll_s: float = request.app.state.sse_poll_s
    keepalive_s: float = request.app.state.sse_keepalive_s
    yield ": connected\n\n"
    idle = 0.0
    while True:
        try:
            events, status = await run_in_threadpool(_poll, factory, job_id, after_id)
        except Exception:
            yield 'event: error\ndata: {"detail":"database unavailable"}\n\n'
            return
        for event_id, event_type, data in events:
            yield format_event(event_id, event_type, data)
            after_id = event_id
        if len(events) < BATCH and (status is None or status in JOB_TERMINAL):
            return
        if events:
            idle = 0.0
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(poll_s)
        idle += poll_s
        if idle >= keepalive_s:
            idle = 0.0
            yield ": keep-alive\n\n"


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **NOT_FOUND},
)
def job_events(
    job_id: PathId,
    request: Request,
    user: CurrentUser,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SQL_INT, description="Same as Last-Event-ID")
    ] = None,
) -> StreamingResponse:
    """Events ``status|trial|epoch|report`` of the job; ends once the job is finished and every
    event was sent. Resumes after ``Last-Event-ID`` (or ``?after=``)."""
    with session_factory_of(request)() as session:
        if crud.get_job(session, job_id=job_id, owner_id=user.id) is None:
            raise not_found("job")
    start = after or 0
    if last_event_id and _EVENT_ID.fullmatch(last_event_id.strip()):
        start = min(int(last_event_id.strip()), MAX_SQL_INT)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _stream(request, job_id, start), media_type="text/event-stream", headers=headers
    )
