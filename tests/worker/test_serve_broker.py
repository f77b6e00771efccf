"""``synib serve`` reaches the broker before it starts its three children: the embedded broker's
tables exist before they open it together, and a broker that cannot be reached stops ``serve``
with one line naming it (exit code 2) instead of three children failing on their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.broker import TaskProducer
from infra.settings import Settings, get_settings
from worker import cli, serve


@pytest.fixture(autouse=True)
def _state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("SYNIB_BROKER_URL", "SYNIB_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNIB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SYNIB_CONFIG_DIR", str(tmp_path / "config"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_open_broker_creates_the_embedded_broker(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.embedded_broker_file == tmp_path / "state" / "broker.sqlite"
    serve.open_broker(settings)
    assert settings.embedded_broker_file.is_file()
    producer = TaskProducer(settings)
    try:
        assert producer.queue_depth() == 0
    finally:
        producer.close()


def test_serve_stops_at_once_when_the_broker_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda command: started.append(command))
    monkeypatch.setenv("SYNIB_BROKER_URL", "redis://127.0.0.1:1/0")
    assert cli.main(["serve"]) == 2
    ours = [line for line in capsys.readouterr().err.splitlines() if "alembic" not in line]
    assert len(ours) == 1 and ours[0].startswith(
        "synib serve: error: broker redis://127.0.0.1:1/0:"
    )
    assert started == []
