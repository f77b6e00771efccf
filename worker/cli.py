"""The server's own command line: ``python -m worker.cli COMMAND`` runs serve, api, worker,
migrate, reconcile and ``token create|list|revoke`` without the client package. ``synib serve``
starts its api and worker children this way.

``register_token(actions)`` is the entry point ``server`` of the group ``synib.token_commands``,
through which the ``synib`` console script (``synib_client.main``) gets the token actions;
``worker.serve.register`` is the entry point ``server`` of ``synib.commands``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

# Imported here, not inside the handlers: without the [worker] extra this module cannot be
# imported, and the `synib` script then answers `synib token create` with the extra to install.
from worker import serve
from worker.cli_token import run_token_command

USER_ERROR = 2
Handler = Callable[[argparse.Namespace], int]


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _guarded(name: str, handler: Handler) -> Handler:
    """Errors a user can cause (a bad flag, an unknown user, a database that is not there) as
    one line on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except BrokenPipeError:
            raise  # the reader of the output went away: main ends quietly
        except (ValueError, OSError) as exc:
            lines = [" ".join(line.split()) for line in str(exc).splitlines()]
            message = "; ".join(line for line in lines if line) or type(exc).__name__
            print(f"synib {name}: error: {message}", file=sys.stderr)
            return USER_ERROR

    return run


def register_token(actions: Any) -> None:
    """Add ``create``, ``list`` and ``revoke`` to the ``synib token`` actions (an argparse
    ``add_subparsers()`` object)."""
    create = actions.add_parser("create", help="create a token and print it once (server side)")
    create.add_argument("--name", required=True, help="a label for the token")
    create.add_argument("--user", default="admin", help="user name (created if missing)")
    create.add_argument("--admin", action="store_true", help="a new user is an admin")
    create.add_argument(
        "--expires-days",
        type=int,
        default=None,
        metavar="N",
        help="lifetime in days, 1 to 36500 (default: SYNIB_TOKEN_TTL_DAYS, else never expires)",
    )
    listing = actions.add_parser("list", help="list tokens, never their secret (server side)")
    listing.add_argument("--user", default=None, help="only this user's tokens")
    revoke = actions.add_parser("revoke", help="revoke a token by id (server side)")
    revoke.add_argument("id")
    for parser in (create, listing, revoke):
        parser.set_defaults(func=_guarded("token", run_token_command))


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="synib", description="The synib server's commands.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(commands)
    token = commands.add_parser("token", help="create, list, revoke API tokens")
    register_token(token.add_subparsers(dest="action", required=True, metavar="ACTION"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worker.cli``; returns the exit code."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:  # `python -m worker.cli token create | head -1`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
