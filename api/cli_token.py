"""``synib token create|list|revoke``: server-side, straight on the configured database.

These run on the server machine (they read ``SYNIB_DATABASE_URL`` / ``SYNIB_STATE_DIR`` through
``api.settings``), so the first token can be made before any token exists.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from api.auth_admin import admin_session, issue_token, list_user_tokens, revoke
from api.cli_format import format_table
from api.client_errors import ClientError
from api.settings import Settings


def _when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _create(session: Any, args: argparse.Namespace) -> None:
    issued = issue_token(
        session,
        user_name=args.user,
        token_name=args.name,
        ttl_days=args.expires_days,
        is_admin=args.admin,
    )
    print(issued.token)
    expiry = _when(issued.expires_at) or "never"
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
    try:
        with admin_session(settings) as session:
            if args.action == "create":
                _create(session, args)
            elif args.action == "list":
                _list(session, args)
            else:
                revoke(session, token_id=args.id)
                print(f"revoked token {args.id}")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ClientError(
            f"database {settings.database_url}: {reason} (run `synib migrate` first?)"
        ) from exc
    return 0
