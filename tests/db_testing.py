"""Test database helpers shared by tests/conftest.py and tests/migrations (importable by a
unique module name, unlike conftest), and the URLs of the servers the tests use.

Every test reaches PostgreSQL and Redis through the two variables ``.ci/services.sh`` exports
(``make test`` evals them), so the private servers it starts on free ports when the machine's
are down are the ones the tests use: ``SYNIB_TEST_DATABASE_URL`` (a database on the server
where the tests create theirs; default the machine's PostgreSQL) and ``SYNIB_TEST_REDIS_URL``
(default the machine's Redis; each test suite picks a database number of its own).
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get(
    "SYNIB_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("SYNIB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _url_with(url: str, **parts: str) -> str:
    """``url`` with some of its parts (scheme, path) replaced; credentials and query kept."""
    return urllib.parse.urlsplit(url)._replace(**parts).geturl()


# The same URL as libpq (psycopg.connect) spells it: CREATE/DROP DATABASE run there.
PG_ADMIN_URL = _url_with(TEST_DATABASE_URL, scheme="postgresql")


def redis_url(db: int) -> str:
    """The test Redis server (``SYNIB_TEST_REDIS_URL``) with database number ``db``."""
    return _url_with(TEST_REDIS_URL, path=f"/{db}")


TABLES = (
    "workers",
    "job_events",
    "epoch_metrics",
    "artifacts",
    "trials",
    "jobs",
    "dataset_features",
    "datasets",
    "api_tokens",
    "users",
)


def pg_url_for(database: str) -> str:
    """SQLAlchemy URL (psycopg 3) of ``database`` on the test server."""
    return _url_with(TEST_DATABASE_URL, scheme="postgresql+psycopg", path=f"/{database}")


def create_pg_database(prefix: str = "synib_test") -> str:
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic_config(url: str) -> Any:
    """alembic.config.Config for ``url`` (logging left alone)."""
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)
