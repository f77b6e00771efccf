"""Engine and session factories: PostgreSQL (psycopg 3) in full mode, SQLite in embedded mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000

SessionFactory = Callable[[], Session]
"""A zero-argument callable returning a new session (a ``sessionmaker``)."""


def normalize_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` to the psycopg 3 driver; other URLs unchanged."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _engine_kwargs(url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Backend defaults under the caller's ``kwargs``: SQLite's busy timeout and cross-thread
    use, PostgreSQL's pre-ping of pooled connections."""
    if _is_sqlite(url):
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        return {"connect_args": connect_args, **kwargs}
    return {"pool_pre_ping": True, **kwargs}


def _install_sqlite_hooks(engine: Engine, url: str) -> None:
    """SQLite: the pragmas on every new connection; the parent folder is created at the first
    connection, so building an engine touches no file."""
    if not _is_sqlite(url):
        return
    event.listen(engine, "connect", _sqlite_on_connect)
    database = make_url(url).database
    if database and database != ":memory:":
        folder = Path(database).expanduser().parent
        event.listen(engine, "do_connect", lambda *_: folder.mkdir(parents=True, exist_ok=True))


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``.

    SQLite: WAL journal, foreign keys on, busy timeout; the parent folder is created at the
    first connection.
    PostgreSQL: pre-ping pooled connections.
    """
    url = normalize_url(url)
    engine = create_engine(url, **_engine_kwargs(url, kwargs))
    _install_sqlite_hooks(engine, url)
    return engine


def async_url(url: str) -> str:
    """The asyncio driver for ``url``: psycopg 3 serves both (``postgresql+psycopg``), SQLite
    goes through aiosqlite."""
    url = normalize_url(url)
    if _is_sqlite(url):
        return (
            make_url(url).set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
        )
    return url


def make_async_engine(url: str, pool_size: int | None = None, **kwargs: Any) -> AsyncEngine:
    """The asyncio twin of :func:`make_engine` (same backend defaults and SQLite hooks), for the
    API's token lookups on the event loop. ``pool_size``: connections kept open (PostgreSQL)."""
    url = async_url(url)
    if pool_size is not None and not _is_sqlite(url):
        kwargs = {"pool_size": pool_size, **kwargs}
    engine = create_async_engine(url, **_engine_kwargs(url, kwargs))
    _install_sqlite_hooks(engine.sync_engine, url)
    return engine


def make_async_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=engine, expire_on_commit=False)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are returned to callers)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@lru_cache(maxsize=4)
def session_factory(database_url: str) -> sessionmaker[Session]:
    """One engine (and session factory) per database URL and process, for the worker's and the
    housekeeper's long-lived processes."""
    return make_session_factory(make_engine(database_url))


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that rolls back on error and always closes."""
    session = factory()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
