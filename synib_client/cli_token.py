"""``synib token show``: the server URL and the token the client would use, and where each comes
from. Only the token's first characters are printed, as ``synib token list`` on the server
shows them, so the two can be matched up without the secret reaching a terminal or a log;
``--reveal`` prints the whole token (the admin token ``synib serve`` saved, when it scrolled by).

``register(actions)`` is the entry point ``client`` of the group ``synib.token_commands``; the
server adds ``create``, ``list`` and ``revoke`` beside it (they write its database).
"""

from __future__ import annotations

import argparse
from typing import Any

from synib_client.cli import connection_options, guarded
from synib_client.config import find_credentials

TOKEN_PREFIX = "synib_"
SHOWN_CHARS = len(TOKEN_PREFIX) + 4  # what the server's token list shows of each token


def token_display_prefix(token: str) -> str:
    """``synib_AbC1...`` for a token ``synib_AbC1<secret>``."""
    return token[:SHOWN_CHARS] + "..."


def cmd_token_show(args: argparse.Namespace) -> int:
    found = find_credentials(args.url, args.token)
    print(f"url    {found.url}  ({found.url_from})")
    if found.token is None:
        print("token  none  (set SYNIB_TOKEN, or give --token)")
    else:
        shown = found.token if args.reveal else token_display_prefix(found.token)
        print(f"token  {shown}  ({found.token_from})")
    return 0


def register(actions: Any) -> None:
    """Add ``show`` to the ``synib token`` actions (an argparse ``add_subparsers()`` object)."""
    show = actions.add_parser(
        "show", parents=[connection_options()], help="the server URL and token the client uses"
    )
    show.add_argument(
        "--reveal", action="store_true", help="print the whole token, not only its first characters"
    )
    show.set_defaults(func=guarded("token", cmd_token_show))
