"""Fault: the database becomes unreachable for several seconds while a job trains.

The API and the worker reach PostgreSQL through a TCP proxy that the test cuts (the listener
and every open connection closed: new connections are refused) and then restores. While cut,
the API answers 503 with a JSON reason (no stack trace); afterwards it recovers by itself. The
worker retries its writes with backoff: no epoch row of any trial is lost, and it ends
``succeeded``. The housekeeper, which reaches the database through the same proxy, skips its
passes during the outage and does not mistake the job for dead afterwards (no requeue), although
no heartbeat could be written for longer than the staleness period.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from reliability_harness import (
    RedisServer,
    Sandbox,
    wait_for,
    worker_env,
)
from reliability_jobs import (
    create_job,
    epochs_by_trial,
    send,
    status_history,
    tiny_spec,
    wait_final,
)
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EPOCHS = 30
MIN_OUTAGE_S = 8.0  # longer than the heartbeat staleness of the test worker (6 s)


@pytest.fixture
def proxy(pg_database_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_database_url)
    tcp = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    tcp.restore()
    try:
        yield tcp
    finally:
        tcp.cut()


def test_database_outage_answers_503_then_recovers_and_loses_no_epoch(
    sandbox: Sandbox, private_redis: RedisServer, proxy: TcpProxy, tmp_path: Any
) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from infra.settings import Settings
    from infra.tokens import issue_token

    proxied = make_url(sandbox.database_url).set(port=proxy.port).render_as_string(False)
    settings = Settings(
        state_dir=sandbox.state_dir,
        database_url=proxied,
        broker_url=private_redis.url,
        static_dir=tmp_path / "none",
        config_dir=tmp_path / "config",
        auth_cache_ttl_s=0,  # every request needs the database, authentication included
    )
    env = worker_env(
        state_dir=sandbox.state_dir,
        database_url=proxied,
        broker_url=private_redis.url,
        ray_tmp=sandbox.ray_tmp,
    )
    with sandbox.sessions() as session:
        token = issue_token(session, user_name=f"api-{proxy.port}").token
    headers = {"Authorization": f"Bearer {token}"}
    worker = sandbox.worker(env, "worker")
    housekeeper = sandbox.housekeeper(env)
    job_id = create_job(sandbox.sessions, sandbox.owner_id, tiny_spec(["vanilla", "synib"], EPOCHS))
    assert send(settings, "synib.run_job", job_id) is not None
    wait_for(
        lambda: (
            (e := epochs_by_trial(sandbox.sessions, job_id))
            and all(len(v) >= 2 for v in e.values())
        ),
        180,
        lambda: f"epochs to arrive; log:\n{worker.log()[-3000:]}",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        assert api.get("/api/v1/jobs", headers=headers).status_code == 200
        retries_before = worker.log().count("database unavailable")

        proxy.cut()  # the fault
        cut_at = time.monotonic()
        for path in ("/api/v1/jobs", f"/api/v1/jobs/{job_id}", "/api/v1/me"):
            response = api.get(path, headers=headers)
            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"detail": "database unavailable"}
            assert response.headers["retry-after"] == "5"
        response = api.post("/api/v1/jobs", headers=headers, json={"dataset_id": "x"})
        assert response.status_code == 503 and "Traceback" not in response.text
        wait_for(
            lambda: (
                worker.log().count("database unavailable") > retries_before
                and time.monotonic() - cut_at >= MIN_OUTAGE_S
            ),
            60,
            lambda: f"the worker to hit the outage; log:\n{worker.log()[-3000:]}",
        )
        epochs_during = epochs_by_trial(sandbox.sessions, job_id)
        proxy.restore()

        # The API recovers by itself (no restart): the first request after may still fail.
        wait_for(
            lambda: api.get("/api/v1/jobs", headers=headers).status_code == 200,
            30,
            "the API to answer again",
        )
    assert wait_final(sandbox.sessions, job_id, 240, worker.log) == "succeeded"
    final = epochs_by_trial(sandbox.sessions, job_id)
    assert final == {key: list(range(1, EPOCHS + 1)) for key in final}, final
    assert len(final) == 2
    assert any(len(e) < EPOCHS for e in epochs_during.values()), "the outage hit no training"
    # Heartbeats stopped during the outage, but the job was not taken for dead.
    assert status_history(sandbox.sessions, job_id) == ["queued", "running", "succeeded"]
    assert "retrying" in worker.log()
    assert "pass skipped, database unavailable" in housekeeper.log()  # it ran meanwhile
    assert "lost its worker" not in housekeeper.log()


def test_worker_writes_back_off_exponentially_and_give_up_when_bounded() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from worker.db_retry import retry_db

    def flaky(failures: int) -> Any:
        state = {"left": failures}

        def write() -> str:
            if state["left"]:
                state["left"] -= 1
                raise OperationalError("INSERT", {}, Exception("connection refused"))
            return "written"

        return write

    slept: list[float] = []
    assert retry_db(flaky(3), what="w", max_wait_s=60, sleep=slept.append) == "written"
    assert slept == [0.2, 0.4, 0.8]
    slept.clear()
    with pytest.raises(OperationalError):
        retry_db(flaky(100), what="w", max_wait_s=2.0, sleep=slept.append)
    assert slept == pytest.approx([0.2, 0.4, 0.8, 0.6])  # bounded: 2.0 s in total
    slept.clear()

    def broken() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        retry_db(broken, what="w", sleep=slept.append)
    assert slept == []  # not a connection problem: no retry
