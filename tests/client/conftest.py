"""Fixtures of the client tests: the real API app (tests/conftest.py) served on a free port by
``live_server.serve_app``, rows written through crud as a worker would (tests/api's factories).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

# Test folders are not packages: the API tests' row factories are importable once their folder
# is on the path (pytest adds it only while it collects tests/api).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_factories import add_ready_dataset

from infra.db.models import Dataset


@pytest.fixture
def dataset(db_session: Session, user_token: tuple[str, str]) -> Dataset:
    """A ready dataset of ``alice``."""
    return add_ready_dataset(db_session, user_token[1])
