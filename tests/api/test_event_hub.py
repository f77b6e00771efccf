"""The EventHub on its own (a real database, PostgreSQL and SQLite): each live stream gets its own
events from the shared reader, and one that leaves too many batches unread is told to catch up
from the database instead of holding them in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from api_factories import add_job
from sqlalchemy.orm import Session

from api.event_hub import MAX_PENDING, CatchUp, EventHub, Message, Stop, Subscription
from infra.db import crud
from infra.db.models import Dataset
from infra.db.session import make_engine, make_session_factory


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def drained(sub: Subscription) -> list[Message]:
    messages = []
    while not sub.queue.empty():
        messages.append(sub.queue.get_nowait())
    return messages


def test_streams_of_one_job_get_the_events_after_their_own_cursor(
    db_url: str, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    [first, second] = [e.id for e in crud.list_events(db_session, job_id=job.id)]
    engine = make_engine(db_url)

    async def scenario() -> None:
        hub = EventHub(make_session_factory(engine), max_per_token=8, max_per_process=8)
        hub.poll_s = 0.01
        behind, current = hub.open("t1", job.id), hub.open("t2", job.id)
        hub.go_live(behind, first)
        hub.go_live(current, second)
        crud.set_job_status(db_session, job_id=job.id, status="succeeded")
        await until(lambda: hub.live_streams == 0, "both streams handed the job's end")
        got_behind, got_current = drained(behind), drained(current)
        assert got_behind[-1] == got_current[-1] == Stop(None)
        [events_behind], [events_current] = got_behind[:-1], got_current[:-1]
        assert isinstance(events_behind, list) and isinstance(events_current, list)
        [ended] = events_current  # the status event the job's end wrote
        assert ended[1] == "status" and ended[2]["status"] == "succeeded"
        assert [e[0] for e in events_behind] == [second, ended[0]]
        await hub.close()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()


def test_a_stream_that_does_not_read_is_told_to_catch_up(
    db_url: str, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    last = crud.list_events(db_session, job_id=job.id)[-1].id
    engine = make_engine(db_url)

    async def scenario() -> None:
        hub = EventHub(make_session_factory(engine), max_per_token=8, max_per_process=8)
        hub.poll_s = 0.01
        sub = hub.open("t", job.id)
        hub.go_live(sub, last)
        for n in range(1, MAX_PENDING + 2):  # one batch per event, none read
            crud.add_event(db_session, job_id=job.id, type="epoch", data={"epoch": n})
            await until(lambda n=n: sub.queue.qsize() == n, f"batch {n}")  # type: ignore[misc]
        assert not sub.live and hub.live_streams == 0 and hub.open_streams == 1
        messages = drained(sub)
        assert isinstance(messages[-1], CatchUp) and len(messages) == MAX_PENDING + 1
        hub.release(sub)
        assert hub.open_streams == 0
        await hub.close()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
