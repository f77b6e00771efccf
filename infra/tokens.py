"""Administration of users and API tokens (used by ``synib token ...`` and ``synib serve``).

Example:
    >>> with admin_session(settings) as session:
    ...     issued = issue_token(session, user_name="alice", token_name="laptop")
    >>> issued.token  # shown once; only its sha256 is stored
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import ApiToken, utcnow
from infra.db.session import make_engine, make_session_factory
from infra.security import generate_token, hash_token, token_display_prefix
from infra.settings import MAX_TOKEN_TTL_DAYS, Settings

NAME_MAX_CHARS = 100  # users.name and api_tokens.name are String(100) (infra/db/models.py)


class TokenAdminError(ValueError):
    """A user-caused problem (unknown user or token): ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    user_id: str
    user_name: str
    prefix: str
    expires_at: datetime | None


@contextmanager
def admin_session(settings: Settings) -> Iterator[Session]:
    """A session on the configured database (engine disposed afterwards)."""
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def issue_token(
    session: Session,
    *,
    user_name: str,
    token_name: str = "default",
    ttl_days: int | None = None,
    create_user: bool = True,
    is_admin: bool = False,
) -> IssuedToken:
    """Create a token for ``user_name`` (creating the user unless ``create_user`` is False).

    ``ttl_days``: 1 to MAX_TOKEN_TTL_DAYS, or None for a token that never expires. Every
    argument is checked before the first write, so a bad one leaves no user behind.
    """
    _check_name("user", user_name, allow_empty=False)
    _check_name("token_name", token_name, allow_empty=True)
    if ttl_days is not None and not 1 <= ttl_days <= MAX_TOKEN_TTL_DAYS:
        raise TokenAdminError(
            "ttl_days", f"must be from 1 to {MAX_TOKEN_TTL_DAYS} days (100 years), got {ttl_days}"
        )
    expires = utcnow() + timedelta(days=ttl_days) if ttl_days is not None else None
    user = crud.get_user_by_name(session, name=user_name)
    if user is None:
        if not create_user:
            raise TokenAdminError("user", f"no user named {user_name!r}")
        # Committed with its token (create_token commits): never a user without one.
        user = crud.create_user(session, name=user_name, is_admin=is_admin, commit=False)
    plain = generate_token()
    row = crud.create_token(
        session,
        user_id=user.id,
        name=token_name,
        token_hash=hash_token(plain),
        prefix=token_display_prefix(plain),
        expires_at=expires,
    )
    return IssuedToken(plain, row.id, user.id, user.name, row.prefix, expires)


def _check_name(field: str, value: str, *, allow_empty: bool) -> None:
    """The database would refuse these (PostgreSQL: over-long strings, NUL characters)."""
    if not allow_empty and not value.strip():
        raise TokenAdminError(field, "must not be empty")
    if len(value) > NAME_MAX_CHARS:
        raise TokenAdminError(field, f"at most {NAME_MAX_CHARS} characters, got {len(value)}")
    if "\x00" in value:
        raise TokenAdminError(field, "must not contain a NUL character")


def list_user_tokens(session: Session, *, user_name: str) -> list[ApiToken]:
    user = crud.get_user_by_name(session, name=user_name)
    if user is None:
        raise TokenAdminError("user", f"no user named {user_name!r}")
    return crud.list_tokens(session, user_id=user.id)


def revoke(session: Session, *, token_id: str) -> None:
    """Revoke a token by id; raises TokenAdminError if unknown or already revoked."""
    if not crud.revoke_token(session, token_id=token_id):
        raise TokenAdminError("token_id", f"no active token with id {token_id!r}")
