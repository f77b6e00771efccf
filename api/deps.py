"""FastAPI dependencies: settings, database sessions, artifact store, task producer, current
user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from api.ratelimit import SlidingWindowLimiter
from api.schemas.common import CleanText
from api.token_cache import TokenCache, VerifiedToken
from infra.broker import TaskProducer
from infra.db import crud
from infra.db.models import User, utcnow
from infra.security import hash_token, hashes_match, looks_like_token
from infra.settings import Settings
from infra.storage import Store

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


def read_session_factory_of(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.read_session_factory
    return factory


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session for a thread-pool route. Creating it touches no connection (the first query in
    the endpoint's thread does); closing it returns the connection, in the thread pool."""
    session = session_factory_of(request)()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_producer(request: Request) -> TaskProducer:
    producer: TaskProducer = request.app.state.producer
    return producer


PathId = Annotated[CleanText, Path(description="Resource id")]
"""A resource id in the path (ids of other users' resources answer 404)."""

SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
StoreDep = Annotated[Store, Depends(get_store)]
ProducerDep = Annotated[TaskProducer, Depends(get_producer)]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=reason,
        headers={"WWW-Authenticate": "Bearer"},
    )


def presented_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The token of an ``Authorization: Bearer synib_...`` header (401 when missing or
    malformed: no database lookup for those)."""
    if credentials is None:
        raise _unauthorized("missing or malformed Authorization header (Bearer token)")
    if not looks_like_token(credentials.credentials):
        raise _unauthorized("malformed token")
    return credentials.credentials


def verify_token(session: Session, token: str, token_hash: str) -> VerifiedToken:
    """What the database says of ``token`` (401 when unknown, revoked or expired); marks it
    used when its last use is over a minute old."""
    found = crud.get_token_and_user(session, token_hash=token_hash)
    if found is None or not hashes_match(found[0].token_hash, token):
        raise _unauthorized("invalid token")
    row, user = found
    if row.revoked_at is not None:
        raise _unauthorized("token revoked")
    now = utcnow()
    _refuse_expired(row.expires_at, now)
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        crud.touch_token(session, token_id=row.id)
    return VerifiedToken(row.id, user, row.expires_at)


def _refuse_expired(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise _unauthorized("token expired")


def admit(request: Request, verified: VerifiedToken) -> User:
    """The token's user, once its expiry (checked again: a cached token may have expired since)
    and the per-token rate limit (429) allow the request."""
    _refuse_expired(verified.expires_at, utcnow())
    limiter: SlidingWindowLimiter = request.app.state.limiter
    if not limiter.allow(verified.token_id):
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="rate limit exceeded",
            headers={"Retry-After": str(limiter.retry_after(verified.token_id))},
        )
    return verified.user


async def verified_token(request: Request, token: str) -> VerifiedToken:
    """What the database says of ``token`` (401 when unknown, revoked or expired), on the event
    loop: no query at all when it was verified in the last ``auth_cache_ttl_s`` seconds. A
    lookup uses a short autocommit session of its own (no connection is held afterwards)."""
    token_hash = hash_token(token)
    cache: TokenCache = request.app.state.token_cache
    verified = cache.get(token_hash)
    if verified is None:
        async with read_session_factory_of(request)() as session:
            verified = await session.run_sync(verify_token, token, token_hash)
        cache.put(token_hash, verified)
    _refuse_expired(verified.expires_at, utcnow())
    return verified


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The presented token itself (401 when missing or malformed)."""
    return presented_token(credentials)


BearerToken = Annotated[str, Depends(bearer_token)]
"""The request's token, for a route that checks it again later (an event stream)."""


async def get_current_user(request: Request, token: BearerToken) -> User:
    """The token's user (401 / 429 otherwise), on the event loop (see ``verified_token``)."""
    return admit(request, await verified_token(request, token))


CurrentUser = Annotated[User, Depends(get_current_user)]
