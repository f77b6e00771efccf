"""Fixtures of the client tests: the real API app (tests/conftest.py) served on a free port by
``live_server.serve_app``, rows written through crud as a worker would (tests/api's factories).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

# Test folders are not packages: the API tests' row factories are importable once their folder
# is on the path (pytest adds it only while it collects tests/api).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_factories import add_ready_dataset
from live_server import serve_app

from infra.db.models import Dataset
from synib_client.main import main


@pytest.fixture
def dataset(db_session: Session, user_token: tuple[str, str]) -> Dataset:
    """A ready dataset of ``alice``."""
    return add_ready_dataset(db_session, user_token[1])


Run = Any  # Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli("jobs", "list") -> (exit code, stdout, stderr)`` through the ``synib`` script's
    ``main`` (every installed part's commands, in this process)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def live_env(
    app: Any, user_token: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The API served on a free port; SYNIB_URL / SYNIB_TOKEN point the CLI at it as alice."""
    with serve_app(app) as url:
        monkeypatch.setenv("SYNIB_URL", url)
        monkeypatch.setenv("SYNIB_TOKEN", user_token[0])
        monkeypatch.setenv("SYNIB_CONFIG_DIR", str(tmp_path / "config"))
        yield url
