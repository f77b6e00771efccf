"""Shared fixtures: fresh PostgreSQL and SQLite test databases (migrated with Alembic), the API
app/client parametrised over both backends, users and tokens.

Each test starts from empty tables (truncated before it runs); the PostgreSQL database
``synib_test_<random>`` is created once per session and dropped at the end. The run fails when
it leaves a process of its own running (``leftover_check``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from db_testing import TABLES, create_pg_database, drop_pg_database, migrate, pg_url_for
from leftover_check import (  # noqa: F401 (hooks: the check runs for every test folder)
    pytest_addoption,
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session (dropped afterwards)."""
    name = create_pg_database()
    url = pg_url_for(name)
    try:
        migrate(url)
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'synib.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, object]]:
    engines: dict[str, object] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()  # type: ignore[attr-defined]


def _truncate(engine: object) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:  # type: ignore[attr-defined]
        if conn.dialect.name == "postgresql":
            # A session some test left open (idle in transaction) holds a lock TRUNCATE waits
            # for: fail within seconds, naming the cause, instead of hanging the suite.
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            try:
                conn.execute(text(f"TRUNCATE TABLE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            except Exception as exc:
                if getattr(getattr(exc, "orig", None), "sqlstate", None) != "55P03":
                    raise  # not lock_not_available
                raise RuntimeError(
                    "could not empty the test database within 20 s: an earlier test left a "
                    "session with an open transaction (close every session it opens)"
                ) from exc
        else:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, _engines: dict[str, object]) -> str:
    """URL of an empty, migrated database; parametrised over PostgreSQL and SQLite."""
    from infra.db.session import make_engine

    fixture = "pg_database_url" if request.param == "postgresql" else "sqlite_database_url"
    url: str = request.getfixturevalue(fixture)
    if url not in _engines:
        _engines[url] = make_engine(url)
    _truncate(_engines[url])
    return url


@pytest.fixture
def db_session(db_url: str, _engines: dict[str, object]) -> Iterator[object]:
    """A Session (sqlalchemy.orm.Session) on the test database."""
    from infra.db.session import make_session_factory

    factory = make_session_factory(_engines[db_url])  # type: ignore[arg-type]
    with factory() as session:
        yield session


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path) -> object:
    """Settings for an isolated service: the test database, the embedded broker (a SQLite
    file) and an artifact store under tmp_path, no dashboard."""
    from infra.settings import Settings

    return Settings(
        state_dir=tmp_path / "state",
        database_url=db_url,
        static_dir=tmp_path / "no-dashboard",
        config_dir=tmp_path / "config",
        rate_limit_per_minute=100_000,
    )


@pytest.fixture
def app(api_settings: object) -> object:
    from api.main import create_app

    application = create_app(api_settings)  # type: ignore[arg-type]
    application.state.event_hub.poll_s = 0.05
    return application


@pytest.fixture
def client(app: object) -> Iterator[object]:
    """A TestClient (starlette.testclient) on the app; the app's engine is disposed after."""
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:  # type: ignore[arg-type]
        yield test_client


@pytest.fixture
def make_token(db_session: object):  # -> Callable[[str], tuple[str, str]]
    """Factory: ``make_token("alice", ttl_days=None) -> (plain token, user id)``."""
    from infra.tokens import issue_token

    def make(user_name: str, ttl_days: int | None = None) -> tuple[str, str]:
        issued = issue_token(db_session, user_name=user_name, ttl_days=ttl_days)  # type: ignore[arg-type]
        return issued.token, issued.user_id

    return make


@pytest.fixture
def user_token(make_token) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(token, user id) of user ``alice``."""
    return make_token("alice")


@pytest.fixture
def auth(user_token: tuple[str, str]) -> dict[str, str]:
    """Authorization headers of ``alice``."""
    return {"Authorization": f"Bearer {user_token[0]}"}


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """moto's S3 server on loopback with a fresh bucket (``s3_server.S3Server``) for the
    session; its credentials (an IAM user's key pair, checked by the server) are in this
    process's environment meanwhile."""
    import os

    from s3_server import CREDENTIAL_NAMES, s3_server

    saved = {name: os.environ.get(name) for name in CREDENTIAL_NAMES}
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        server.apply_env()
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
