"""The ``synib`` console script: one argparse parser composed from three packages.

``synib_core.cli.register`` adds train, compare, data; ``synib_client.cli.register`` adds token,
datasets, submit, jobs, watch, report, download; ``worker.serve.register`` adds serve, api,
worker, housekeeper, migrate, reconcile. Each is imported lazily (``synib --version`` imports none of them), and a
package that cannot be imported (an extra not installed) leaves its commands in place with a
clear error. Handlers return the exit code; a user error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from synib_core import __version__

USER_ERROR = 2

# module -> (the extra that provides it, the commands it registers)
COMMAND_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "synib_core.cli": ("core", ("train", "compare", "data")),
    "synib_client.cli": (
        "api",
        ("token", "datasets", "submit", "jobs", "watch", "report", "download"),
    ),
    "worker.serve": (
        "worker",
        ("serve", "api", "worker", "housekeeper", "migrate", "reconcile"),
    ),
}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (``synib <command>: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _missing_handler(command: str, extra: str, error: Exception) -> Any:
    def handler(args: argparse.Namespace) -> int:
        print(
            f"synib {command}: error: this command needs the [{extra}] extra "
            f"(pip install 'synib[{extra}]'): {error}",
            file=sys.stderr,
        )
        return USER_ERROR

    return handler


def _add_placeholders(subparsers: Any, module: str, error: Exception) -> None:
    """Commands of a package that cannot be imported: they answer with the reason."""
    extra, commands = COMMAND_MODULES[module]
    for command in commands:
        parser = subparsers.add_parser(command, help=f"(unavailable: needs the [{extra}] extra)")
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(func=_missing_handler(command, extra, error))


def build_parser() -> argparse.ArgumentParser:
    """The full parser (imports the three command modules, not torch or ray)."""
    parser = OneLineParser(
        prog="synib", description="SynIB as a service: train, compare, serve, submit."
    )
    parser.add_argument("--version", action="version", version=f"synib {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        try:
            register = importlib.import_module(module).register
        except ImportError as exc:
            _add_placeholders(subparsers, module, exc)
            continue
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``synib`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):
        print(f"synib {__version__}")  # instant: nothing else is imported
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
    return int(func(args))


if __name__ == "__main__":
    sys.exit(main())
