"""A real Celery worker announces itself in ``workers`` once it consumes the queue and removes
its row when it stops; ``GET /ready`` reports it (``ok: 1 serving``, then ``none serving``) and
``GET /api/v1/models`` lists the models it offers (its SYNIB_MODEL_DIR's and the packaged ones)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from model_testing import write_manifest
from worker_process import running_worker
from worker_testing import BROKER_URL, wait_for

from api.main import create_app
from infra.db import crud
from infra.db.models import utcnow
from infra.settings import Settings
from infra.tokens import issue_token
from synib_spec.backbones import PACKAGED_MODELS


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
    model = write_manifest(tmp_path / "models" / "my-bert", licence="Apache-2.0")
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": 24}')
    env = {"SYNIB_MODEL_DIR": str(tmp_path / "models")}
    with TestClient(create_app(settings)) as client:
        with running_worker(pg_database_url, tmp_path / "worker", extra_env=env) as harness:
            wait_for(lambda: _serving(harness.sessions) == 1, 30, "the worker's presence row")
            body = client.get("/ready").json()
            assert body["status"] == "ready", body
            assert body["checks"]["workers"] == "ok: 1 serving"
            sessions = harness.sessions
            with sessions() as session:
                token = issue_token(session, user_name="alice").token
            models = client.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"})
            offered = {m["name"]: m for m in models.json()["data"]}
            assert set(offered) == {"my-bert", *(info.name for info, _ in PACKAGED_MODELS)}
            assert offered["my-bert"]["output_dim"] == 24
            assert offered["my-bert"]["licence"] == "Apache-2.0"
            assert offered["my-bert"]["workers"] == 1
        # Stopped (SIGTERM, warm shutdown): its row is gone, jobs would stay queued.
        assert _serving(sessions) == 0
        body = client.get("/ready").json()
    assert body["status"] == "degraded"
    assert body["checks"]["workers"] == "none serving: jobs stay queued"
