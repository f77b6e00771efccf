"""FastAPI dependencies: settings, database session, artifact store, task producer, current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from api.db import crud
from api.db.models import User, utcnow
from api.queue import TaskProducer
from api.ratelimit import SlidingWindowLimiter
from api.schemas.common import CleanText
from api.security import hash_token, hashes_match, looks_like_token
from api.settings import Settings
from api.storage import ArtifactStore

_TOUCH_EVERY = timedelta(minutes=1)
_bearer = HTTPBearer(auto_error=False, description="An API token `synib_...`")


# The request-scoped lookups below are ``async def`` on purpose: FastAPI runs a plain ``def``
# dependency in the thread pool, and each such hop costs a thread handoff (and GIL contention
# under load) for what is an attribute read.


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def session_factory_of(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def async_session_factory_of(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.async_session_factory
    return factory


async def get_async_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's asyncio session (authentication and the hot routes): its queries wait on
    the event loop. ORM code written for a ``Session`` runs in it through ``run_sync``."""
    session = async_session_factory_of(request)()
    try:
        yield session
    finally:
        await session.close()


async def get_db(
    request: Request, async_session: Annotated[AsyncSession, Depends(get_async_db)]
) -> AsyncIterator[Session]:
    """A session for a thread-pool route. Creating it touches no connection (the first query in
    the endpoint's thread does); closing it returns the connection, in the thread pool.

    Such a route has no use for the request's asyncio session that authenticated it: closing
    that one here hands its connection back to the pool before the route runs (a later use
    would simply open a new transaction)."""
    await async_session.close()
    session = session_factory_of(request)()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


async def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


async def get_producer(request: Request) -> TaskProducer:
    producer: TaskProducer = request.app.state.producer
    return producer


PathId = Annotated[CleanText, Path(description="Resource id")]
"""A resource id in the path (ids of other users' resources answer 404)."""

SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_db)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
ProducerDep = Annotated[TaskProducer, Depends(get_producer)]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=reason,
        headers={"WWW-Authenticate": "Bearer"},
    )


def authenticate(
    request: Request, session: Session, credentials: HTTPAuthorizationCredentials | None
) -> User:
    """The user of a valid ``Authorization: Bearer synib_...`` token (401 otherwise; 429 when
    the token exceeds the rate limit)."""
    if credentials is None:
        raise _unauthorized("missing or malformed Authorization header (Bearer token)")
    token = credentials.credentials
    if not looks_like_token(token):
        raise _unauthorized("malformed token")
    found = crud.get_token_and_user(session, token_hash=hash_token(token))
    if found is None or not hashes_match(found[0].token_hash, token):
        raise _unauthorized("invalid token")
    row, user = found
    now = utcnow()
    if row.revoked_at is not None:
        raise _unauthorized("token revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise _unauthorized("token expired")
    limiter: SlidingWindowLimiter = request.app.state.limiter
    if not limiter.allow(row.id):
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="rate limit exceeded",
            headers={"Retry-After": str(limiter.retry_after(row.id))},
        )
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        crud.touch_token(session, token_id=row.id)
    return user


async def get_current_user(
    request: Request,
    session: AsyncSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The token's user, looked up on the event loop (no thread hop: every request pays it).
    The session is the request's: an async route reuses it and its connection."""
    return await session.run_sync(lambda sync: authenticate(request, sync, credentials))


async def get_stream_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Like get_current_user, with a session closed at once (for long streaming responses)."""
    async with async_session_factory_of(request)() as session:
        return await session.run_sync(lambda sync: authenticate(request, sync, credentials))


CurrentUser = Annotated[User, Depends(get_current_user)]
StreamUser = Annotated[User, Depends(get_stream_user)]
