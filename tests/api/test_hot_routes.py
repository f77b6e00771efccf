"""The hot routes (authentication, ``POST /jobs``, ``GET /jobs/{id}``) run on the event loop,
and the producer's background sender.

Those routes wait on the database through the asyncio engine and hand the broker message to
the producer's sender thread, so they never take one of the thread pool's tokens: they keep
answering while every token is held (by slow exports, say). Both backends."""

from __future__ import annotations

import base64
import gc
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from api_factories import record_statements
from db_testing import redis_url
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.db.models import Dataset
from api.deps import CurrentUser, SessionDep, read_connection, write_connection
from api.queue import RUN_JOB, TaskProducer
from api.settings import Settings

URL = "/api/v1/jobs"


def _hold_the_thread_pool(client: TestClient) -> tuple[threading.Event, threading.Event]:
    """Shrink the app loop's thread pool to one token and hold it (a blocking call parked in
    the pool) until the first returned event is set or 20 s passed; the second is set when
    the pool is free again."""
    release = threading.Event()
    holding = threading.Event()
    freed = threading.Event()

    def blocked() -> None:
        holding.set()
        release.wait(20)
        freed.set()

    async def occupy() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        await anyio.to_thread.run_sync(blocked)

    portal: Any = client.portal  # type: ignore[attr-defined]
    portal.start_task_soon(occupy)
    assert holding.wait(10), "the thread pool was never occupied"
    return release, freed


def test_hot_routes_answer_while_the_thread_pool_is_exhausted(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    release, freed = _hold_the_thread_pool(client)
    try:
        # A thread-pool route cannot run now: the pool is really exhausted.
        listed: dict[str, int] = {}
        lister = threading.Thread(
            target=lambda: listed.update(code=client.get(URL, headers=auth).status_code)
        )
        lister.start()
        lister.join(1.0)
        assert lister.is_alive() and not listed

        # The hot routes still answer, authentication included.
        spec = {"dataset_id": dataset.id, "methods": ["vanilla", "synib"]}
        created = client.post(URL, headers=auth, json=spec)
        assert created.status_code == 202, created.text
        job = created.json()
        read = client.get(f"{URL}/{job['id']}", headers=auth)
        assert read.status_code == 200 and read.json()["id"] == job["id"]
        assert client.get(URL + "/nope", headers=auth).status_code == 404
        assert client.get(f"{URL}/{job['id']}").status_code == 401
        assert client.post(URL, headers=auth, json={"methods": []}).status_code == 422
        assert not freed.is_set(), "the hot routes waited for the thread pool"
    finally:
        release.set()
    lister.join(10)
    assert listed == {"code": 200}


def test_a_thread_pool_route_holds_only_its_own_connection(app: Any, auth: dict[str, str]) -> None:
    """The asyncio session that authenticated a thread-pool route gives its connection back
    before the route runs: the route holds one connection, not two."""

    @app.get("/api/v1/probe-connections")
    def probe(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        session.execute(text("select 1"))
        return {
            "user": user.name,
            "async": app.state.async_engine.pool.checkedout(),
            "sync": app.state.engine.pool.checkedout(),
        }

    with TestClient(app) as client:
        # The first request stamps the token's last use (a commit, which ends the
        # transaction anyway); the second only reads it.
        first = client.get("/api/v1/probe-connections", headers=auth)
        second = client.get("/api/v1/probe-connections", headers=auth)
    assert first.json() == second.json() == {"user": "alice", "async": 0, "sync": 1}


def test_the_heap_alive_at_startup_is_frozen(client: TestClient) -> None:
    """The app's startup froze the objects alive then (full collections skip them)."""
    assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() > 10_000


def _broker_messages(settings: Settings) -> list[dict[str, Any]]:
    folder = settings.broker_dir / "out"
    return [json.loads(Path(f).read_text()) for f in sorted(folder.glob("*.synib.msg"))]


def test_submit_sends_in_the_background(api_settings: Settings) -> None:
    producer = TaskProducer(api_settings)
    try:
        for i in range(5):
            producer.submit(RUN_JOB, f"job-{i}", task_id=f"task-{i}")
        assert producer.flush(10.0)
        messages = _broker_messages(api_settings)
        assert sorted(m["headers"]["id"] for m in messages) == [f"task-{i}" for i in range(5)]
        assert {m["headers"]["task"] for m in messages} == {RUN_JOB}
    finally:
        producer.close()


def test_close_sends_what_is_still_waiting(api_settings: Settings) -> None:
    producer = TaskProducer(api_settings)
    for i in range(20):
        producer.submit(RUN_JOB, f"job-{i}")
    producer.close()  # no flush first: close drains the outbox
    assert len(_broker_messages(api_settings)) == 20


def test_a_broker_that_is_down_loses_the_message_not_the_sender(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed send is logged (the reconciler resends the queued job later); the sender
    thread lives on and handles the next message."""
    down = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    producer = TaskProducer(down)
    try:
        with caplog.at_level(logging.ERROR, logger="api.queue"):
            producer.submit(RUN_JOB, "job-1")
            producer.submit(RUN_JOB, "job-2")
            assert producer.flush(60.0)
        assert "could not enqueue synib.run_job(job-1)" in caplog.text
        assert "could not enqueue synib.run_job(job-2)" in caplog.text
    finally:
        producer.close()


@pytest.fixture
def redis_producer(api_settings: Settings) -> Iterator[tuple[TaskProducer, Any]]:
    """A producer on the test Redis (a database of its own, emptied before and after)."""
    import redis

    url = redis_url(11)
    client = redis.Redis.from_url(url)
    client.flushdb()
    producer = TaskProducer(api_settings.model_copy(update={"broker_url": url}))
    try:
        yield producer, client
    finally:
        producer.close()
        client.flushdb()
        client.close()


def _shape(raw: bytes) -> tuple[Any, ...]:
    """A kombu message on Redis without its per-message values: its keys, its task and args."""
    message = json.loads(raw)
    body = json.loads(base64.b64decode(message["body"]))
    return (
        sorted(message),
        sorted(message["properties"]),
        sorted(message["headers"]),
        message["headers"]["task"],
        message["properties"]["delivery_info"],
        body[0],
    )


def test_messages_sent_together_read_like_one_sent_alone(
    redis_producer: tuple[TaskProducer, Any],
) -> None:
    """Messages that waited in the outbox together go out in one kombu batch; each reads
    exactly like a message sent on its own (what the worker consumes), in submission order."""
    producer, client = redis_producer
    producer.send(RUN_JOB, "job-0", task_id="task-0")
    alone = client.rpop("synib")
    producer._send_all([(RUN_JOB, f"job-{i}", f"task-{i}") for i in range(1, 6)])
    together = [client.rpop("synib") for _ in range(5)]
    assert client.llen("synib") == 0
    assert [json.loads(m)["headers"]["id"] for m in together] == [f"task-{i}" for i in range(1, 6)]
    expected = _shape(alone)
    for i, message in enumerate(together, start=1):
        assert _shape(message) == (*expected[:-1], [f"job-{i}"])


def test_a_batch_that_fails_is_sent_one_by_one(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Broker down: the batch fails, each message is tried on its own and logged as not sent."""
    down = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    producer = TaskProducer(down)
    try:
        with caplog.at_level(logging.WARNING, logger="api.queue"):
            producer._send_all([(RUN_JOB, "job-1", None), (RUN_JOB, "job-2", None)])
        assert "sending 2 messages at once failed" in caplog.text
        assert "could not enqueue synib.run_job(job-1)" in caplog.text
        assert "could not enqueue synib.run_job(job-2)" in caplog.text
    finally:
        producer.close()


def _backend_pid(engine: Any) -> int:
    async def read() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("select pg_backend_pid()"))).scalar_one())

    return anyio.run(read)


@pytest.mark.parametrize("idle_ping_s", [0.0, 3600.0])
def test_an_idle_pooled_connection_is_pinged_and_replaced_when_dead(
    pg_database_url: str, idle_ping_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asyncio engine pings a connection that sat idle for IDLE_PING_S (not every
    checkout). Its server process is killed while pooled: with the ping the next request
    gets a fresh connection; without it (a long idle threshold) that request fails once."""
    from sqlalchemy.exc import DBAPIError

    import api.db.session as db_session
    from api.db.session import make_async_engine, make_engine

    monkeypatch.setattr(db_session, "IDLE_PING_S", idle_ping_s)
    engine = make_async_engine(pg_database_url)
    admin = make_engine(pg_database_url)
    try:
        pid = _backend_pid(engine)
        assert _backend_pid(engine) == pid  # pooled, reused
        with admin.connect() as conn:
            conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
            conn.commit()
        if idle_ping_s == 0.0:
            assert _backend_pid(engine) != pid
        else:
            with pytest.raises(DBAPIError) as failed:
                _backend_pid(engine)
            assert failed.value.connection_invalidated
            assert _backend_pid(engine) != pid  # the pool replaced it after the failure
    finally:
        anyio.run(engine.dispose)
        admin.dispose()


def test_reads_run_in_autocommit_and_a_job_is_written_in_one_statement_where_possible(
    app: Any, auth: dict[str, str], dataset: Dataset
) -> None:
    """``GET /jobs/{id}`` reads through an autocommit connection (no BEGIN/ROLLBACK round
    trips). ``POST /jobs`` writes the job and its first event in one statement on PostgreSQL
    (so its connection is in autocommit mode too), in one transaction of two on SQLite."""

    async def level(connection: Any) -> str:
        async with connection as conn:
            options = conn.sync_connection.get_execution_options()
            return str(options.get("isolation_level", "default"))

    @app.get("/api/v1/probe-levels")
    async def probe(user: CurrentUser, request: Request) -> dict[str, str]:
        read = await level(read_connection(request))
        return {"read": read, "write": await level(write_connection(request))}

    postgresql = app.state.async_engine.dialect.name == "postgresql"
    with TestClient(app) as client:
        assert client.get("/api/v1/probe-levels", headers=auth).json() == {
            "read": "AUTOCOMMIT",
            "write": "AUTOCOMMIT" if postgresql else "default",
        }
        statements = record_statements(app)
        created = client.post(
            URL, headers=auth, json={"dataset_id": dataset.id, "methods": ["vanilla"]}
        )
        assert created.status_code == 202, created.text
        job = client.get(f"{URL}/{created.json()['id']}", headers=auth).json()
    assert job == created.json()
    # Columns the job was not given are SQL NULL, as the ORM writes them (not JSON null).
    from api.db.session import make_engine

    engine = make_engine(str(app.state.settings.database_url))
    try:
        with engine.connect() as conn:
            nulls = conn.execute(
                text('SELECT "references" IS NULL, report IS NULL, worker IS NULL FROM jobs')
            ).one()
    finally:
        engine.dispose()
    assert tuple(nulls) == (True, True, True)
    writes = [s.split(" (")[0] for s in statements if not s.startswith("SELECT")]
    if postgresql:
        assert writes == ["WITH new_job AS"]
        assert "INSERT INTO jobs" in statements[1] and "INSERT INTO job_events" in statements[1]
    else:
        assert writes == ["INSERT INTO jobs", "INSERT INTO job_events"]


@pytest.fixture
def failing_event_inserts(db_url: str) -> Iterator[None]:
    """While active, the database refuses every new ``job_events`` row."""
    from api.db.session import make_engine

    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        add = "ALTER TABLE job_events ADD CONSTRAINT test_no_events CHECK (type = '-') NOT VALID"
        drop = "ALTER TABLE job_events DROP CONSTRAINT test_no_events"
    else:
        add = (
            "CREATE TRIGGER test_no_events BEFORE INSERT ON job_events "
            "BEGIN SELECT RAISE(ABORT, 'no events'); END"
        )
        drop = "DROP TRIGGER test_no_events"
    with engine.begin() as conn:
        conn.execute(text(add))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(drop))
        engine.dispose()


def test_a_job_is_written_with_its_first_event_or_not_at_all(
    app: Any, auth: dict[str, str], dataset: Dataset, failing_event_inserts: None
) -> None:
    """Both backends: when the event cannot be written, neither is the job (PostgreSQL: one
    statement; SQLite: one transaction), and the API answers 500 without a job id."""
    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.post(
            URL, headers=auth, json={"dataset_id": dataset.id, "methods": ["vanilla"]}
        )
        assert failed.status_code == 500
        listed = client.get(URL, headers=auth)
    assert listed.status_code == 200 and listed.json()["count"] == 0


def test_the_asyncio_pool_keeps_db_pool_size_connections(api_settings: Settings) -> None:
    """PostgreSQL: the event-loop routes' pool keeps SYNIB_DB_POOL_SIZE connections (a pool
    smaller than the requests in flight reconnects request after request); SQLite keeps its
    own default."""
    from api.main import create_app

    app = create_app(api_settings.model_copy(update={"db_pool_size": 7}))
    size = app.state.async_engine.pool.size()
    if api_settings.database_url.startswith("sqlite"):
        assert size != 7  # not applied: one file, no server processes to keep
    else:
        assert size == 7
        assert create_app(api_settings).state.async_engine.pool.size() == 20


def test_a_ready_dataset_is_looked_up_once_and_each_spec_still_checked_against_it(
    app: Any, auth: dict[str, str], dataset: Dataset
) -> None:
    """The second job on a ready dataset writes without reading the dataset again; a spec the
    dataset cannot serve is still refused with the field named."""
    spec = {"dataset_id": dataset.id, "methods": ["vanilla"]}
    with TestClient(app) as client:
        assert client.post(URL, headers=auth, json=spec).status_code == 202
        statements = record_statements(app)
        assert client.post(URL, headers=auth, json=spec).status_code == 202
        assert not [s for s in statements if s.startswith("SELECT")], statements
        unknown = {**spec, "methods": ["synib"], "config": {"modality_weights": "b=2"}}
        refused = client.post(URL, headers=auth, json=unknown)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "config.modality_weights"


def test_a_dataset_deleted_behind_the_cache_is_refused_as_missing(
    app: Any, auth: dict[str, str], dataset: Dataset, db_session: Any
) -> None:
    """Deleted by another process after this one cached it: the job's insert breaks its
    foreign key and the answer is the usual 422, with no job written."""
    from api.db import crud

    spec = {"dataset_id": dataset.id, "methods": ["vanilla"]}
    with TestClient(app) as client:
        assert client.post(URL, headers=auth, json=spec).status_code == 202
        # As another API process would (its first job's dataset_id becomes null).
        assert crud.delete_dataset(db_session, dataset_id=dataset.id) is None  # no file
        refused = client.post(URL, headers=auth, json=spec)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["field"] == "dataset_id"
        assert "no dataset" in refused.json()["detail"][0]["msg"]
        assert client.get(URL, headers=auth).json()["count"] == 1  # the first job only
        assert client.post(URL, headers=auth, json=spec).status_code == 422  # entry dropped


def test_a_pending_dataset_is_not_kept(
    app: Any, auth: dict[str, str], db_session: Any, user_token: tuple[str, str]
) -> None:
    """A dataset not ready yet is read again by the next job: once it failed, jobs on it are
    refused with its reason."""
    from api_factories import add_ready_dataset

    from api.db import crud

    pending = add_ready_dataset(db_session, user_token[1], status="pending")
    spec = {"dataset_id": pending.id, "methods": ["vanilla"]}
    with TestClient(app) as client:
        assert client.post(URL, headers=auth, json=spec).status_code == 202
        crud.mark_dataset_failed(db_session, dataset_id=pending.id, error="generator broke")
        refused = client.post(URL, headers=auth, json=spec)
    assert refused.status_code == 422
    assert "dataset failed: generator broke" in refused.json()["detail"][0]["msg"]
