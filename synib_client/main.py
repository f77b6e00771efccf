"""The ``synib`` console script: one argparse parser composed from the installed parts.

Each part adds its commands through an entry point of pyproject.toml, found with
``importlib.metadata.entry_points``; the client never imports the server or the library by name:
- group ``synib.commands``: ``client`` (datasets, submit, jobs, watch, report, download, knobs),
  ``core`` (train, compare, data), ``server`` (serve, api, worker, migrate, reconcile, settings, models);
- group ``synib.token_commands``, the actions of ``synib token``: ``client`` (show) and
  ``server`` (create, list, revoke: they write the server's database).
A command whose actions come from more than one part records its ``add_subparsers()`` object as
the parser default ``SUBCOMMANDS`` (read with the public ``parser.get_default``): the client's
``synib datasets`` does, and the core part adds ``synib datasets import`` to it (parts register
in name order: client, core, server).
A part that cannot be imported (its extra is not installed) leaves its commands in place, and
each answers with one line naming the extra to install; so does a command that imports more
when it runs (``synib train`` needs torch). ``synib --version`` imports none of the parts.
Handlers return the exit code; a user error is one line on stderr and exit code 2; output cut
off by a closed pipe (``synib jobs list | head -1``) ends the command quietly with exit code 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

USER_ERROR = 2
COMMANDS = "synib.commands"
TOKEN_COMMANDS = "synib.token_commands"
SUBCOMMANDS = "synib_subcommands"  # parser default: the add_subparsers() object of a command

# The parts this project ships: the extra that installs each and the commands it adds. Only
# read when a part cannot be imported, to name its commands and what to install.
SHIPPED_PARTS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    (COMMANDS, "client"): (
        "client",
        ("datasets", "submit", "jobs", "watch", "report", "download", "knobs"),
    ),
    (COMMANDS, "core"): ("core", ("train", "compare", "data", "datasets import")),
    (COMMANDS, "server"): (
        "worker",
        ("serve", "api", "worker", "housekeeper", "migrate", "reconcile", "settings", "models"),
    ),
    (TOKEN_COMMANDS, "client"): ("client", ("show",)),
    (TOKEN_COMMANDS, "server"): ("worker", ("create", "list", "revoke")),
}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (``synib <command>: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def needs_extra(command: str, extra: str, error: Exception) -> str:
    """The one line a command prints when its part, or what it imports, is not installed."""
    return (
        f"synib {command}: error: this command needs the [{extra}] extra "
        f"(pip install 'synib[{extra}]'): {error}"
    )


def _placeholder(command: str, extra: str, error: Exception) -> Any:
    def handler(args: argparse.Namespace) -> int:
        print(needs_extra(command, extra, error), file=sys.stderr)
        return USER_ERROR

    return handler


def add_part(subparsers: Any, entry_point: metadata.EntryPoint, prefix: str = "") -> None:
    """Let the part behind ``entry_point`` add its commands to ``subparsers``; when it cannot be
    imported, add its known commands as placeholders that say which extra to install."""
    extra, commands = SHIPPED_PARTS.get((entry_point.group, entry_point.name), ("", ()))
    before = set(subparsers.choices)
    try:
        register = entry_point.load()
    except ImportError as exc:
        if not extra:
            print(f"synib: commands of {entry_point.value} not loaded: {exc}", file=sys.stderr)
        for command in commands:
            _add_placeholder(subparsers, prefix + command, command.split(), extra, exc)
        return
    register(subparsers)
    for command in set(subparsers.choices) - before:
        subparsers.choices[command].set_defaults(synib_extra=extra)


def _add_placeholder(
    subparsers: Any, full: str, words: list[str], extra: str, error: Exception
) -> None:
    """A command (``words``: ``["datasets", "import"]`` for an action of another part's
    command, added when that command offers ``SUBCOMMANDS``) that says which extra to install.
    Whatever follows (--port 9000, --help) is taken in and ignored: with no "-" among its prefix
    characters the placeholder sees no options, only its REMAINDER."""
    for word in words[:-1]:
        parent = subparsers.choices.get(word)
        subparsers = None if parent is None else parent.get_default(SUBCOMMANDS)
        if subparsers is None:
            return
    parser = subparsers.add_parser(
        words[-1], help=f"(needs the [{extra}] extra)", prefix_chars="+", add_help=False
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=_placeholder(full, extra, error), synib_extra=extra)


def _parts(group: str) -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: every installed part's commands (imports the parts, not torch or Ray)."""
    parser = OneLineParser(
        prog="synib", description="SynIB as a service: train, compare, serve, submit."
    )
    parser.add_argument("--version", action="version", version=f"synib {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry_point in _parts(COMMANDS):
        add_part(commands, entry_point)
    token = commands.add_parser(
        "token", help="show the token the client uses; create, list, revoke tokens (server side)"
    )
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    for entry_point in _parts(TOKEN_COMMANDS):
        add_part(actions, entry_point, prefix="token ")
    return parser


def version() -> str:
    try:
        return metadata.version("synib")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``synib`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):
        print(f"synib {version()}")  # instant: no part is imported
        return 0
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return USER_ERROR
    return _dispatch(func, args)


def _dispatch(func: Any, args: argparse.Namespace) -> int:
    try:
        code = int(func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except ImportError as exc:  # a command that imports more when it runs
        extra = getattr(args, "synib_extra", None)
        if not extra:
            raise
        print(needs_extra(args.command, extra, exc), file=sys.stderr)
        return USER_ERROR
    except BrokenPipeError:
        # The reader went away (`synib jobs list | head -1`): it has what it asked for, so stop
        # quietly with success, the rest of the output sent nowhere (Python's docs, "Note on
        # SIGPIPE": without the dup2 the interpreter's exit would flush into the closed pipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
