"""Settings from the environment, and the full mode's Redis broker (ready check, queue depth)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from db_testing import redis_url
from fastapi.testclient import TestClient

from api.main import create_app
from infra.db.models import Dataset
from infra.settings import Settings

REDIS_URL = redis_url(13)  # the test Redis (SYNIB_TEST_REDIS_URL)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNIB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SYNIB_MAX_UPLOAD_MB", "2")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'synib.db'}"
    assert settings.artifact_root == tmp_path / "state" / "artifacts"
    # Embedded mode's broker: kombu's SQLAlchemy transport on a SQLite file in the state folder.
    broker_file = tmp_path / "state" / "broker.sqlite"
    assert settings.broker_url == f"sqla+sqlite:///{broker_file}"
    assert settings.embedded_broker_file == broker_file
    assert settings.max_upload_bytes == 2 * 1024 * 1024
    assert settings.ray_address == "ray://head:10001"
    assert settings.rate_limit_per_minute == 600 and settings.token_ttl_days is None
    monkeypatch.setenv("SYNIB_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("SYNIB_BROKER_URL", "redis://r:6379/0")
    full = Settings()
    assert full.database_url == "postgresql+psycopg://u@h/db"
    assert full.broker_url == "redis://r:6379/0" and full.embedded_broker_file is None


def test_redis_broker_ready_and_queue_depth(
    api_settings: Settings, auth: dict[str, str], dataset: Dataset
) -> None:
    client_redis = redis.Redis.from_url(REDIS_URL)
    client_redis.delete("synib")
    full = api_settings.model_copy(update={"broker_url": REDIS_URL})
    try:
        with TestClient(create_app(full)) as client:
            assert client.get("/api/v1/ready").json()["checks"]["broker"] == "ok"
            for _ in range(2):
                spec = {"dataset_id": dataset.id, "methods": ["vanilla"]}
                assert client.post("/api/v1/jobs", headers=auth, json=spec).status_code == 202
            assert client_redis.llen("synib") == 2  # sent before the 202
            metrics = client.get("/api/v1/metrics", headers=auth).text
            assert "synib_queue_depth 2.0" in metrics
            assert 'synib_jobs{status="queued"} 2.0' in metrics
    finally:
        client_redis.delete("synib")


def test_every_setting_says_what_it_does_and_synib_settings_prints_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from infra.settings import Settings, settings_table
    from synib_client.main import main

    rows = settings_table()
    assert [name for name, _, _ in rows] == [f"SYNIB_{f.upper()}" for f in Settings.model_fields]
    assert all(meaning for _, _, meaning in rows)
    assert main(["settings", "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| variable | default | meaning |" and len(out) == len(rows) + 2
    assert "| `SYNIB_PORT` | `8000` | where the API listens |" in out
