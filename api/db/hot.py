"""The API's two hottest paths, ``POST /jobs`` and ``GET /jobs/{id}``, as SQLAlchemy Core
statements on an asyncio connection.

Through an ``AsyncSession`` (the ORM code run by ``run_sync``: unit of work, identity map, a
greenlet hop per statement) writing a job cost the API about 2.7 ms of CPU and reading one
1.8 ms; as Core statements on the ``AsyncConnection``, about 1.1 and 0.65 ms (measured in one
process on PostgreSQL; benchmarks/README.md). Round trips are few, too: under load each one is
also a turn waiting behind the event loop's other requests. ``GET /jobs/{id}`` reads the job
and its succeeded trials in one statement. On PostgreSQL a new job and its first event go in
one statement, so ``POST /jobs`` makes 2 round trips instead of 5 (BEGIN, the dataset, the job,
the event, COMMIT).

The statements are built once and run on PostgreSQL and SQLite (the one-statement write is
PostgreSQL's; SQLite writes the same two rows in a transaction). Values go in and come out
through the models' column types (aware UTC datetimes, JSON), and a result ``Row`` answers the
attribute reads of ``build_job_public``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, TypeAlias, cast

from sqlalchemy import JSON, Dialect, Row, String, Table, bindparam, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db.crud_events import status_event_data
from api.db.models import Dataset, Job, JobEvent, Trial

AnyRow: TypeAlias = Row[*tuple[Any, ...]]

JOBS = cast(Table, Job.__table__)
EVENTS = cast(Table, JobEvent.__table__)
DATASETS = cast(Table, Dataset.__table__)
TRIALS = cast(Table, Trial.__table__)

# A job and its succeeded trials in one round trip: one row per such trial (the job's columns
# repeated), or one row with null trial columns when it has none.
_TRIAL_FIELDS = ("id", "trial_key", "method", "status", "config", "metrics")
_OWNED_JOB = (
    select(*JOBS.c, *(TRIALS.c[name].label(f"trial_{name}") for name in _TRIAL_FIELDS))
    .outerjoin(TRIALS, (TRIALS.c.job_id == JOBS.c.id) & (TRIALS.c.status == "succeeded"))
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.owner_id == bindparam("owner_id"))
    .order_by(TRIALS.c.trial_key)
)
_OWNED_DATASET = select(
    DATASETS.c.id, DATASETS.c.name, DATASETS.c.status, DATASETS.c.error, DATASETS.c.summary
).where(DATASETS.c.id == bindparam("dataset_id"), DATASETS.c.owner_id == bindparam("owner_id"))


def _bind_type(column: Any) -> Any:
    """The column's type for a value bound to it; a JSON column's None is SQL NULL (as the ORM
    writes a column it was not given), not the JSON text ``null``."""
    return JSON(none_as_null=True) if isinstance(column.type, JSON) else column.type


_JOB_VALUES = {column.key: bindparam(column.key, type_=_bind_type(column)) for column in JOBS.c}
_INSERT_JOB = insert(JOBS).values(_JOB_VALUES)
_INSERT_EVENT = insert(EVENTS)
# PostgreSQL: the job's INSERT in a CTE feeds its first event's: both rows in one statement,
# atomic on its own (no BEGIN and COMMIT round trips).
_NEW_JOB = _INSERT_JOB.returning(JOBS.c.id, JOBS.c.created_at).cte("new_job")
_INSERT_JOB_AND_EVENT = insert(EVENTS).from_select(
    ["job_id", "type", "data", "created_at"],
    select(
        _NEW_JOB.c.id,
        literal("status", String),
        bindparam("event_data", type_=EVENTS.c.data.type),
        _NEW_JOB.c.created_at,
    ),
)


def is_missing_reference(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a foreign key violation (a row it points to is gone)."""
    if getattr(exc.orig, "sqlstate", None) == "23503":  # PostgreSQL: foreign_key_violation
        return True
    return "FOREIGN KEY constraint failed" in str(exc.orig)  # SQLite


def writes_in_one_statement(dialect: Dialect) -> bool:
    """Whether :func:`insert_job` writes in one statement on ``dialect`` (PostgreSQL), so that
    it may run on an autocommit connection; SQLite cannot nest an INSERT in a CTE."""
    return dialect.name == "postgresql"


async def owned_job(
    conn: AsyncConnection, *, job_id: str, owner_id: str
) -> tuple[AnyRow, list[SimpleNamespace]] | None:
    """The user's job and its succeeded trials (id, trial_key, method, status, config, metrics;
    ordered by trial key), or None when there is no such job or it is another user's."""
    rows = (await conn.execute(_OWNED_JOB, {"job_id": job_id, "owner_id": owner_id})).all()
    if not rows:
        return None
    trials = [
        SimpleNamespace(**{name: getattr(row, f"trial_{name}") for name in _TRIAL_FIELDS})
        for row in rows
        if row.trial_id is not None
    ]
    return rows[0], trials


async def owned_dataset(conn: AsyncConnection, *, dataset_id: str, owner_id: str) -> AnyRow | None:
    """The columns a new job is checked against (id, name, status, error, summary) of the
    user's dataset, or None."""
    params = {"dataset_id": dataset_id, "owner_id": owner_id}
    return (await conn.execute(_OWNED_DATASET, params)).first()


async def insert_job(conn: AsyncConnection, job: Job) -> None:
    """Insert ``job`` (a transient row from ``crud.new_job``) and its first status event, both
    or neither. PostgreSQL: one statement. SQLite: two, which the caller's transaction commits
    together (``conn`` must not be in autocommit mode there)."""
    values = {column.key: getattr(job, column.key) for column in JOBS.c}
    event_data = status_event_data(job)
    if writes_in_one_statement(conn.dialect):
        await conn.execute(_INSERT_JOB_AND_EVENT, {**values, "event_data": event_data})
        return
    await conn.execute(_INSERT_JOB, values)
    event = {"job_id": job.id, "type": "status", "data": event_data, "created_at": job.created_at}
    await conn.execute(_INSERT_EVENT, event)
