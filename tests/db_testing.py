"""Test database helpers shared by tests/conftest.py and tests/migrations (importable by a
unique module name, unlike conftest)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "SYNIB_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TABLES = (
    "job_events",
    "epoch_metrics",
    "artifacts",
    "trials",
    "jobs",
    "datasets",
    "api_tokens",
    "users",
)


def pg_url_for(database: str) -> str:
    """SQLAlchemy URL (psycopg 3) of ``database`` on the admin server."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


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
