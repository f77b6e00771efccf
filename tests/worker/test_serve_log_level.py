"""SYNIB_LOG_LEVEL (docker-compose.yml sets it) is the log level of ``synib serve``, ``synib api``
(uvicorn), ``synib worker`` and ``synib housekeeper`` (Celery); each command's --log-level flag
wins over it. Nothing is started: uvicorn.run, the Celery workers and serve's children are
stand-ins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra.settings import Settings, get_settings
from worker import cli, serve


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv("SYNIB_LOG_LEVEL", raising=False)
    monkeypatch.setenv("SYNIB_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_setting_is_read_case_insensitively_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().log_level == "info"
    for given, read in (("WARNING", "warning"), (" Debug ", "debug"), ("critical", "critical")):
        monkeypatch.setenv("SYNIB_LOG_LEVEL", given)
        assert Settings().log_level == read
    monkeypatch.setenv("SYNIB_LOG_LEVEL", "verbose")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "log_level: 'verbose' is not one of debug, info, warning, error, critical" in str(
        caught.value
    )


def _uvicorn_log_level(monkeypatch: pytest.MonkeyPatch, *argv: str) -> Any:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    assert cli.main(["api", *argv]) == 0
    get_settings.cache_clear()
    return seen["log_level"]


def test_synib_api_runs_uvicorn_at_the_setting_unless_the_flag_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _uvicorn_log_level(monkeypatch) == "info"
    monkeypatch.setenv("SYNIB_LOG_LEVEL", "ERROR")
    assert _uvicorn_log_level(monkeypatch) == "error"
    assert _uvicorn_log_level(monkeypatch, "--log-level", "Debug") == "debug"


def _celery_argv(monkeypatch: pytest.MonkeyPatch, *argv: str) -> list[str]:
    from worker.celery_app import app

    seen: list[list[str]] = []
    monkeypatch.setattr(app, "worker_main", lambda argv: seen.append(list(argv)))
    assert cli.main(["worker", *argv]) == 0
    get_settings.cache_clear()
    return seen[0]


def test_synib_worker_runs_celery_at_the_setting_unless_the_flag_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def level(argv: list[str]) -> str:
        return argv[argv.index("-l") + 1]

    assert level(_celery_argv(monkeypatch)) == "INFO"
    monkeypatch.setenv("SYNIB_LOG_LEVEL", "warning")
    assert level(_celery_argv(monkeypatch)) == "WARNING"
    assert level(_celery_argv(monkeypatch, "--log-level", "critical")) == "CRITICAL"
    assert level(_celery_argv(monkeypatch, "--loglevel", "DEBUG")) == "DEBUG"  # Celery's spelling


def _housekeeper_argv(monkeypatch: pytest.MonkeyPatch, *argv: str) -> list[str]:
    from worker.housekeeper import app

    seen: list[list[str]] = []
    monkeypatch.setattr(app, "worker_main", lambda argv: seen.append(list(argv)))
    assert cli.main(["housekeeper", *argv]) == 0
    get_settings.cache_clear()
    return seen[0]


def test_synib_housekeeper_runs_beat_and_one_solo_worker_at_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    argv = _housekeeper_argv(monkeypatch)
    assert argv[argv.index("-Q") + 1] == "synib.housekeeping"
    assert "--beat" in argv and argv[argv.index("--pool") + 1] == "solo"
    assert argv[argv.index("-c") + 1] == "1"
    assert argv[argv.index("-s") + 1] == str(tmp_path / "state" / "housekeeper-schedule")
    assert (tmp_path / "state").is_dir()  # beat opens its schedule file there
    assert argv[argv.index("-l") + 1] == "INFO"
    monkeypatch.setenv("SYNIB_LOG_LEVEL", "error")
    argv = _housekeeper_argv(monkeypatch, "--log-level", "debug")
    assert argv[argv.index("-l") + 1] == "DEBUG"


def _children_log_level(monkeypatch: pytest.MonkeyPatch, *argv: str) -> list[str | None]:
    """The SYNIB_LOG_LEVEL the api, worker and housekeeper children of ``synib serve``
    inherit."""
    inherited: list[str | None] = []
    started: list[str] = []

    def fake_popen(command: list[str], **_options: object) -> object:
        inherited.append(os.environ.get("SYNIB_LOG_LEVEL"))
        started.append(command[-1])
        return object()

    monkeypatch.setattr(serve, "migrate", lambda settings: None)
    monkeypatch.setattr(serve, "ensure_credentials", lambda s: ({"url": "u", "token": "t"}, False))
    monkeypatch.setattr(serve.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(serve, "supervise", lambda children: 0)
    assert cli.main(["serve", *argv]) == 0
    assert started == ["api", "worker", "housekeeper"]
    return inherited


def test_synib_serve_hands_the_flag_to_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNIB_LOG_LEVEL", "debug")
    assert _children_log_level(monkeypatch) == ["debug"] * 3
    assert _children_log_level(monkeypatch, "--log-level", "WARNING") == ["warning"] * 3


def test_a_bad_level_is_one_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["worker", "--log-level", "loud"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "'loud' is not one of debug, info, warning, error, critical" in err
    monkeypatch.setenv("SYNIB_LOG_LEVEL", "loud")
    assert cli.main(["api"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synib api: error:") and len(err.strip().splitlines()) == 1
    assert "log_level: 'loud' is not one of debug, info, warning, error, critical" in err
