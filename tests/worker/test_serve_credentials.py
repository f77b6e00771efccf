"""The local admin token ``synib serve`` issues (worker/serve.py ensure_credentials), on the real
test databases: SYNIB_TOKEN_TTL_DAYS bounds its life like any new token's, and an expired saved
token is replaced at the next start."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import utcnow
from infra.security import hash_token
from infra.settings import Settings
from worker.serve import ensure_credentials


def _settings(db_url: str, tmp_path: Path, ttl_days: int | None) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        database_url=db_url,
        config_dir=tmp_path / "config",
        token_ttl_days=ttl_days,
    )


def test_serve_token_gets_the_default_lifetime_and_is_replaced_once_expired(
    db_url: str, db_session: Session, tmp_path: Path
) -> None:
    forever, _ = ensure_credentials(_settings(db_url, tmp_path / "no-ttl", None))
    row = crud.get_token_by_hash(db_session, token_hash=hash_token(forever["token"]))
    assert row is not None and row.name == "serve" and row.expires_at is None  # the default
    db_session.commit()  # end the read transaction before another connection writes

    settings = _settings(db_url, tmp_path, 5)
    first, created = ensure_credentials(settings)
    row = crud.get_token_by_hash(db_session, token_hash=hash_token(first["token"]))
    assert created and row is not None and row.expires_at is not None
    left = row.expires_at - utcnow()
    assert datetime.timedelta(days=5, minutes=-5) < left <= datetime.timedelta(days=5)
    db_session.commit()  # end the read transaction before another connection writes
    assert ensure_credentials(settings) == (first, False)  # still valid: reused

    row.expires_at = utcnow() - datetime.timedelta(seconds=1)
    db_session.add(row)
    db_session.commit()
    renewed, created = ensure_credentials(settings)
    assert created and renewed["token"] != first["token"]
    saved = json.loads((tmp_path / "config" / "credentials.json").read_text())
    assert saved["token"] == renewed["token"]
