"""Server-Sent Events of a job, read from ``job_events`` (Last-Event-ID aware).

A stream reads its backlog itself, then follows the job through the process's ``EventHub`` (one
database reader for all streams). It checks its token again about every ``auth_cache_ttl_s``
(through the token cache: about one lookup per token and ``auth_cache_ttl_s``, however many
streams it has open): a revoked or expired token ends it with an ``event: error``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from api.deps import BearerToken, CurrentUser, PathId, session_factory_of, verified_token
from api.errors import AUTH_ERRORS, DATABASE_UNAVAILABLE, NOT_FOUND, RETRY_AFTER_S, not_found
from api.event_hub import BATCH, CatchUp, Event, EventHub, StreamLimit, Subscription
from api.schemas.common import MAX_SQL_INT, Message
from infra.db import crud
from infra.db.models import JOB_TERMINAL

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)

_EVENT_ID = re.compile(r"[0-9]{1,12}")
MIN_RECHECK_S = 1.0
_STREAM_LIMITS: dict[int | str, dict[str, Any]] = {
    code: {
        "model": Message,
        "description": text,
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    }
    for code, text in (
        (429, "Rate limit, or open event streams of this token at SYNIB_MAX_STREAMS_PER_TOKEN"),
        (503, "Open event streams of this API process at its limit, or the server stops"),
    )
}


def format_event(event_id: int, event_type: str, data: dict[str, Any]) -> str:
    """One SSE message: ``id``, ``event`` and one ``data`` line of compact JSON."""
    payload = json.dumps(data, separators=(",", ":"), default=str)
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload}\n\n"


def format_error(reason: str) -> str:
    """An ``event: error`` naming why the stream ends (the client may reconnect)."""
    return f"event: error\ndata: {json.dumps({'detail': reason})}\n\n"


def _poll(factory: sessionmaker[Session], job_id: str, after_id: int) -> tuple[list[Event], bool]:
    """(events after ``after_id``, whether the job was over before they were read)."""
    with factory() as session:
        job = crud.get_job(session, job_id=job_id)
        over = job is None or job.status in JOB_TERMINAL
        rows = crud.list_events(session, job_id=job_id, after_id=after_id, limit=BATCH)
        return [(r.id, r.type, r.data) for r in rows], over


def _job_of(factory: sessionmaker[Session], job_id: str, owner_id: str) -> bool:
    with factory() as session:
        return crud.get_job(session, job_id=job_id, owner_id=owner_id) is not None


@dataclass
class _Stream:
    """What one stream needs: where it is (``after_id``) and whether it is over."""

    request: Request
    token: str
    sub: Subscription
    after_id: int
    over: bool = False


async def _token_problem(stream: _Stream) -> str | None:
    """Why the stream's token no longer serves (revoked, expired, ...), or None."""
    try:
        await verified_token(stream.request, stream.token)
    except HTTPException as refused:
        return str(refused.detail)
    except SQLAlchemyError:
        return DATABASE_UNAVAILABLE
    return None


def _next_check(loop: asyncio.AbstractEventLoop, recheck_s: float) -> float:
    """When to check the token again: within ``recheck_s``, at a random point of its second
    half, so that the streams of one token (often opened together) do not all miss the token
    cache at once; the first check refreshes it, the others find it there."""
    return loop.time() + recheck_s * random.uniform(0.5, 1.0)


async def _backlog(stream: _Stream) -> AsyncIterator[str]:
    """The stored events after ``after_id``, in batches until one is short."""
    factory = session_factory_of(stream.request)
    while True:
        events, over = await run_in_threadpool(_poll, factory, stream.sub.job_id, stream.after_id)
        for event in events:
            yield format_event(*event)
            stream.after_id = event[0]
        if len(events) < BATCH:
            stream.over = over
            return


async def _live(stream: _Stream, hub: EventHub) -> AsyncIterator[str]:
    """What the hub hands over, keep-alives when idle and the token's re-checks; returns when
    the stream is over or fell behind (``CatchUp``)."""
    state = stream.request.app.state
    keepalive_s: float = state.sse_keepalive_s
    recheck_s = max(state.settings.auth_cache_ttl_s, MIN_RECHECK_S)
    loop = asyncio.get_running_loop()
    next_keepalive, next_check = loop.time() + keepalive_s, _next_check(loop, recheck_s)
    hub.go_live(stream.sub, stream.after_id)
    while True:
        if loop.time() >= next_check:
            problem = await _token_problem(stream)
            if problem is not None:
                stream.over = True
                yield format_error(problem)
                return
            next_check = _next_check(loop, recheck_s)
        if loop.time() >= next_keepalive:
            yield ": keep-alive\n\n"
            next_keepalive = loop.time() + keepalive_s
        wait_s = min(next_check, next_keepalive) - loop.time()
        try:
            message = await asyncio.wait_for(stream.sub.queue.get(), max(wait_s, 0.0))
        except TimeoutError:
            continue
        if isinstance(message, CatchUp):
            return
        if not isinstance(message, list):  # Stop
            stream.over = True
            if message.reason is not None:
                yield format_error(message.reason)
            return
        for event in message:
            yield format_event(*event)
            stream.after_id = event[0]
        next_keepalive = loop.time() + keepalive_s


async def _follow(stream: _Stream, hub: EventHub) -> AsyncIterator[str]:
    yield ": connected\n\n"
    while not stream.over:
        try:
            async for chunk in _backlog(stream):
                yield chunk
        except SQLAlchemyError:
            yield format_error(DATABASE_UNAVAILABLE)
            return
        if not stream.over:
            async for chunk in _live(stream, hub):
                yield chunk


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that calls ``on_end`` however it ends (also when the client left
    before its body started), so a stream's slot is always given back."""

    def __init__(self, content: AsyncIterator[str], on_end: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_end()


def _start(last_event_id: str | None, after: int | None) -> int:
    if last_event_id and _EVENT_ID.fullmatch(last_event_id.strip()):
        return min(int(last_event_id.strip()), MAX_SQL_INT)
    return after or 0


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **NOT_FOUND, **_STREAM_LIMITS},
)
async def job_events(
    job_id: PathId,
    request: Request,
    user: CurrentUser,
    token: BearerToken,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SQL_INT, description="Same as Last-Event-ID")
    ] = None,
) -> StreamingResponse:
    """Events ``status|trial|epoch|report`` of the job; ends once the job is finished and every
    event was sent. Resumes after ``Last-Event-ID`` (or ``?after=``). At most
    SYNIB_MAX_STREAMS_PER_TOKEN open streams per token (429); a revoked or expired token, or
    the server stopping, ends the stream with an ``event: error`` naming the reason."""
    if not await run_in_threadpool(_job_of, session_factory_of(request), job_id, user.id):
        raise not_found("job")
    verified = await verified_token(request, token)
    hub: EventHub = request.app.state.event_hub
    try:
        sub = hub.open(verified.token_id, job_id)
    except StreamLimit as limit:
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        raise HTTPException(limit.status_code, limit.detail, headers=headers) from None
    stream = _Stream(request, token, sub, _start(last_event_id, after))
    return EventStreamResponse(_follow(stream, hub), on_end=lambda: hub.release(sub))
