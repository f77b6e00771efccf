"""Fixtures of the API tests."""

from __future__ import annotations

import pytest
from api_factories import add_ready_dataset
from sqlalchemy.orm import Session

from infra.db.models import Dataset


@pytest.fixture
def dataset(db_session: Session, user_token: tuple[str, str]) -> Dataset:
    """A ready dataset of ``alice``."""
    return add_ready_dataset(db_session, user_token[1])
