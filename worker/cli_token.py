"""``synib token create|list|revoke``: server-side, straight on the configured database.

These run on the server machine (they read ``SYNIB_DATABASE_URL`` / ``SYNIB_STATE_DIR`` through
``infra.settings``), so the first token can be made before any token exists.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from infra.settings import MAX_TOKEN_TTL_DAYS, Settings
from infra.tokens import (
    TokenAdminError,
    admin_session,
    issue_token,
    list_user_tokens,
    revoke,
)
from synib_client.cli_format import format_table
from synib_client.errors import ClientError

_FLAGS = {"user": "--user", "token_name": "--name", "ttl_days": "--expires-days"}


def _when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _lifetime_days(args: argparse.Namespace, settings: Settings) -> int | None:
    """--expires-days, else SYNIB_TOKEN_TTL_DAYS, else None (never expires); checked before
    anything is written."""
    if args.expires_days is None:
        return settings.token_ttl_days
    if not 1 <= args.expires_days <= MAX_TOKEN_TTL_DAYS:
        raise ClientError(
            f"--expires-days: expected a whole number of days from 1 to {MAX_TOKEN_TTL_DAYS} "
            f"(100 years), got {args.expires_days}"
        )
    return int(args.expires_days)


def _create(session: Any, args: argparse.Namespace, ttl_days: int | None) -> None:
    issued = issue_token(
        session,
        user_name=args.user,
        token_name=args.name,
        ttl_days=ttl_days,
        is_admin=args.admin,
    )
    print(issued.token)
    expiry = _when(issued.expires_at) or "never"
    if args.expires_days is None and ttl_days is not None:
        expiry += f", after SYNIB_TOKEN_TTL_DAYS={ttl_days} days"
    print(
        f"token {issued.token_id} for user {issued.user_name} (expires {expiry}); "
        "it is shown only this once: export SYNIB_TOKEN=<token>",
        flush=True,
    )


def _list(session: Any, args: argparse.Namespace) -> None:
    tokens = list_user_tokens(session, user_name=args.user or "admin")
    rows = [
        [
            t.id,
            t.name,
            t.prefix + "...",
            _when(t.created_at),
            _when(t.expires_at),
            _when(t.revoked_at),
            _when(t.last_used_at),
        ]
        for t in tokens
    ]
    headers = ["id", "name", "prefix", "created", "expires", "revoked", "last used"]
    print(format_table(headers, rows))


def run_token_command(args: argparse.Namespace) -> int:
    """Handle ``synib token ACTION``; database problems become one-line ``ClientError``s."""
    settings = Settings()
    ttl_days = _lifetime_days(args, settings) if args.action == "create" else None
    try:
        with admin_session(settings) as session:
            if args.action == "create":
                _create(session, args, ttl_days)
            elif args.action == "list":
                _list(session, args)
            else:
                revoke(session, token_id=args.id)
                print(
                    f"revoked token {args.id} (running API processes refuse it within "
                    f"{settings.auth_cache_ttl_s:g} s: SYNIB_AUTH_CACHE_TTL_S)"
                )
    except TokenAdminError as exc:
        raise ClientError(f"{_FLAGS.get(exc.field, exc.field)}: {exc.reason}") from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ClientError(
            f"database {settings.database_url}: {reason} (run `synib migrate` first?)"
        ) from exc
    return 0
