"""Alembic: an empty database migrates up to head and back down, on PostgreSQL and SQLite, and
the migrated schema matches the models exactly (compare_metadata finds no difference)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from db_testing import alembic_config, create_pg_database, drop_pg_database, pg_url_for
from sqlalchemy import inspect

from infra.db.models import Base
from infra.db.session import make_engine

TABLES = {
    "users",
    "api_tokens",
    "datasets",
    "jobs",
    "trials",
    "epoch_metrics",
    "artifacts",
    "job_events",
    "workers",
    "dataset_features",
}


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = create_pg_database("synib_migtest")
    try:
        yield pg_url_for(name)
    finally:
        drop_pg_database(name)


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_matches_models_and_downgrade_empties(empty_url: str) -> None:
    # Sanity check of the comparison itself: an unmigrated database lacks every table.
    missing = {d[1].name for d in _diff(empty_url) if isinstance(d, tuple) and d[0] == "add_table"}
    assert missing == TABLES
    cfg = alembic_config(empty_url)
    command.upgrade(cfg, "head")
    assert _tables(empty_url) == TABLES | {"alembic_version"}
    assert _diff(empty_url) == []
    command.downgrade(cfg, "base")
    assert _tables(empty_url) == {"alembic_version"}
    command.upgrade(cfg, "head")
    assert _diff(empty_url) == []


def test_0007_gives_the_workers_already_there_no_models(empty_url: str) -> None:
    from sqlalchemy import text

    cfg = alembic_config(empty_url)
    command.upgrade(cfg, "0006")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workers (name, hostname, pid, started_at, last_seen_at) "
                    "VALUES ('w@h', 'h', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        command.upgrade(cfg, "0007")
        with engine.connect() as conn:
            models = conn.execute(text("SELECT models FROM workers")).scalar_one()
        assert models in ([], "[]")  # PostgreSQL's driver decodes json, SQLite's text stays
        command.downgrade(cfg, "0006")
        assert "models" not in {c["name"] for c in inspect(engine).get_columns("workers")}
    finally:
        engine.dispose()
