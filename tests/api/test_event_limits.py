"""Event streams as a shared resource: a cap per token, one database reader for all streams of
an API process, a token checked again while streaming. The in-process app, PostgreSQL and
SQLite; each open stream is a TestClient request in a thread, ended by finishing its job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_factories import add_job
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session
from test_events import parse_sse

from infra.db import crud
from infra.db.models import Dataset
from infra.settings import Settings


class Follower(threading.Thread):
    """``GET /jobs/{job_id}/events`` in a thread; ``events`` once the stream has ended."""

    def __init__(self, client: TestClient, job_id: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.client, self.job_id, self.headers = client, job_id, headers
        self.status_code = 0
        self.events: list[dict[str, Any]] = []

    def run(self) -> None:
        response = self.client.get(f"/api/v1/jobs/{self.job_id}/events", headers=self.headers)
        self.status_code = response.status_code
        self.events = parse_sse(response.text)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def follow(client: TestClient, job_id: str, headers: dict[str, str], n: int) -> list[Follower]:
    """``n`` more streams of the job, returned once the app follows all of them live."""
    hub = client.app.state.event_hub  # type: ignore[attr-defined]
    already = hub.live_streams
    followers = [Follower(client, job_id, headers) for _ in range(n)]
    for follower in followers:
        follower.start()
    wait_until(lambda: hub.live_streams == already + n, f"{already + n} live streams")
    return followers


def finish(session: Session, job_id: str, followers: list[Follower]) -> None:
    crud.set_job_status(session, job_id=job_id, status="succeeded")
    for follower in followers:
        follower.join(timeout=30)
        assert not follower.is_alive(), "a stream did not end with its job"


@pytest.fixture
def make_client(api_settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)``: a TestClient on an app with those settings changed."""
    from api.main import create_app

    opened: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        app = create_app(api_settings.model_copy(update=changes))
        app.state.event_hub.poll_s = 0.05
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_open_streams_per_token_are_capped(
    make_client: Callable[..., TestClient],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    make_token: Callable[[str], tuple[str, str]],
) -> None:
    client = make_client(max_streams_per_token=2)
    alice = {"Authorization": f"Bearer {user_token[0]}"}
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    followers = follow(client, job.id, alice, 2)

    refused = client.get(f"/api/v1/jobs/{job.id}/events", headers=alice)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"
    detail = refused.json()["detail"]
    assert "2 open event streams" in detail and "SYNIB_MAX_STREAMS_PER_TOKEN" in detail
    # Another token of the same user has slots of its own.
    second, _ = make_token("alice")
    others = follow(client, job.id, {"Authorization": f"Bearer {second}"}, 1)

    finish(db_session, job.id, followers + others)
    assert all(f.status_code == 200 for f in followers + others)
    assert followers[0].events[-1]["data"]["status"] == "succeeded"
    # The ended streams gave their slots back.
    again = client.get(f"/api/v1/jobs/{job.id}/events", headers=alice)
    assert again.status_code == 200 and parse_sse(again.text)[-1]["event"] == "status"
    assert client.app.state.event_hub.open_streams == 0  # type: ignore[attr-defined]


def test_a_revoked_token_ends_its_open_stream(
    make_client: Callable[..., TestClient],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    client = make_client(auth_cache_ttl_s=0.2)  # checked again every second
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    [follower] = follow(client, job.id, {"Authorization": f"Bearer {user_token[0]}"}, 1)
    [token] = crud.list_tokens(db_session, user_id=user_token[1])
    assert crud.revoke_token(db_session, token_id=token.id)

    follower.join(timeout=30)
    assert not follower.is_alive(), "the stream outlived its revoked token"
    assert follower.events[-1] == {"event": "error", "data": {"detail": "token revoked"}}
    assert [e["event"] for e in follower.events[:-1]] == ["status", "status"]
    assert client.app.state.event_hub.open_streams == 0  # type: ignore[attr-defined]


def _count_statements(app: FastAPI) -> list[int]:
    """A one-item list counting the statements both engines of ``app`` send from now."""
    count = [0]

    def counted(*_args: Any) -> None:
        count[0] += 1

    for engine in (app.state.engine, app.state.async_engine.sync_engine):
        event.listen(engine, "before_cursor_execute", counted)
    return count


def _statements_in(count: list[int], seconds: float) -> int:
    start = count[0]
    time.sleep(seconds)
    return count[0] - start


def test_database_load_does_not_grow_with_open_streams(
    make_client: Callable[..., TestClient],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    """One stream, then twenty on two jobs: the statements the app sends in the same time stay
    about the same (one reader polls for all); they used to grow twentyfold."""
    client = make_client(max_streams_per_token=20, auth_cache_ttl_s=300)
    alice = {"Authorization": f"Bearer {user_token[0]}"}
    jobs = [add_job(db_session, user_token[1], dataset.id, status="running") for _ in range(2)]
    count = _count_statements(client.app)  # type: ignore[arg-type]

    first = follow(client, jobs[0].id, alice, 1)
    with_one = _statements_in(count, 1.0)
    more = follow(client, jobs[0].id, alice, 9) + follow(client, jobs[1].id, alice, 10)
    with_twenty = _statements_in(count, 1.0)

    assert with_one > 0
    assert with_twenty <= 2 * with_one + 4, (with_one, with_twenty)
    finish(db_session, jobs[0].id, first + more[:9])
    finish(db_session, jobs[1].id, more[9:])
