"""A real Celery worker announces itself in ``workers`` once it consumes the queue and removes
its row when it stops; ``GET /ready`` reports it (``ok: 1 serving``, then ``none serving``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from worker_process import running_worker
from worker_testing import BROKER_URL, wait_for

from api.main import create_app
from infra.db import crud
from infra.db.models import utcnow
from infra.settings import Settings


def _serving(harness_sessions: object) -> int:
    with harness_sessions() as session:  # type: ignore[operator]
        since = utcnow() - timedelta(minutes=1)
        return crud.count_workers_seen_since(session, since=since)


def test_ready_reports_the_worker_while_it_runs(pg_database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "api",
        database_url=pg_database_url,
        broker_url=BROKER_URL,
        static_dir=tmp_path / "no-dashboard",
        config_dir=tmp_path / "config",
    )
    (tmp_path / "worker").mkdir()
    with TestClient(create_app(settings)) as client:
        with running_worker(pg_database_url, tmp_path / "worker") as harness:
            wait_for(lambda: _serving(harness.sessions) == 1, 30, "the worker's presence row")
            body = client.get("/ready").json()
            assert body["status"] == "ready", body
            assert body["checks"]["workers"] == "ok: 1 serving"
            sessions = harness.sessions
        # Stopped (SIGTERM, warm shutdown): its row is gone, jobs would stay queued.
        assert _serving(sessions) == 0
        body = client.get("/ready").json()
    assert body["status"] == "degraded"
    assert body["checks"]["workers"] == "none serving: jobs stay queued"
