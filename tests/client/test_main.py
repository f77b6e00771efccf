"""The ``synib`` console script composed from the installed parts (synib_client/main.py): the
entry points pyproject.toml declares, placeholders for a part that cannot be imported, usage
errors on one line. Installing the client alone is tests/client/test_standalone_install.py."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from synib_client.main import (
    COMMANDS,
    SHIPPED_PARTS,
    SUBCOMMANDS,
    TOKEN_COMMANDS,
    OneLineParser,
    add_part,
    main,
)


def _installed_parts() -> dict[tuple[str, str], metadata.EntryPoint]:
    return {
        (ep.group, ep.name): ep
        for group in (COMMANDS, TOKEN_COMMANDS)
        for ep in metadata.entry_points(group=group)
    }


def test_every_shipped_part_is_installed_and_adds_the_commands_named_for_it() -> None:
    """The names a missing part's placeholders use are the names the part really adds."""
    installed = _installed_parts()
    assert set(installed) == set(SHIPPED_PARTS), (
        "the installed entry points differ from SHIPPED_PARTS: after a change of pyproject.toml "
        "reinstall (pip install -e '.[dev]', as make test does)"
    )
    for key, entry_point in installed.items():
        commands = argparse.ArgumentParser().add_subparsers()
        entry_point.load()(commands)
        top_level = tuple(c for c in SHIPPED_PARTS[key][1] if " " not in c)
        assert tuple(commands.choices) == top_level, key
    # an action of another part's command: `synib datasets import` (core, into client's datasets)
    commands = argparse.ArgumentParser().add_subparsers()
    installed[(COMMANDS, "client")].load()(commands)
    installed[(COMMANDS, "core")].load()(commands)
    datasets = commands.choices["datasets"].get_default(SUBCOMMANDS)
    assert "import" in datasets.choices


def test_the_full_parser_has_every_command_and_the_token_actions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    top_level = [
        c
        for (group, _), (_, cs) in SHIPPED_PARTS.items()
        if group == COMMANDS
        for c in cs
        if " " not in c
    ]
    for command in top_level:
        assert f"    {command} " in out or f"    {command}\n" in out, command
    assert "needs the" not in out  # every part is installed here
    assert main(["token", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {action} " in out for action in ("show", "create", "list", "revoke"))


def test_a_part_that_cannot_be_imported_names_the_extra_for_each_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = OneLineParser(prog="synib")
    commands = parser.add_subparsers(dest="command")
    missing = metadata.EntryPoint(
        name="server", value="synib_no_such_part:register", group=COMMANDS
    )
    add_part(commands, missing)
    assert tuple(commands.choices) == SHIPPED_PARTS[(COMMANDS, "server")][1]
    assert "(needs the [worker] extra)" in parser.format_help()
    args = parser.parse_args(["serve", "--port", "9000", "--help"])  # no usage error
    assert args.func(args) == 2
    assert capsys.readouterr().err == (
        "synib serve: error: this command needs the [worker] extra (pip install "
        "'synib[worker]'): No module named 'synib_no_such_part'\n"
    )


def test_an_action_of_a_missing_part_names_its_extra(capsys: pytest.CaptureFixture[str]) -> None:
    """Without the library (core), ``synib datasets import`` is there and says to install it."""
    parser = OneLineParser(prog="synib")
    commands = parser.add_subparsers(dest="command")
    add_part(commands, _installed_parts()[(COMMANDS, "client")])
    add_part(commands, metadata.EntryPoint(name="core", value="synib_no_core:reg", group=COMMANDS))
    assert {"train", "compare", "data", "datasets"} <= set(commands.choices)
    args = parser.parse_args(["datasets", "import", "multibench", "x.pkl", "--out", "x.npz"])
    assert args.func(args) == 2
    assert capsys.readouterr().err.startswith(
        "synib datasets import: error: this command needs the [core] extra (pip install "
        "'synib[core]'): No module named 'synib_no_core'"
    )


def test_an_unknown_part_that_cannot_be_imported_is_named_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = OneLineParser(prog="synib").add_subparsers(dest="command")
    broken = metadata.EntryPoint(name="plugin", value="synib_no_such_part:register", group=COMMANDS)
    add_part(commands, broken)
    assert commands.choices == {}
    assert capsys.readouterr().err == (
        "synib: commands of synib_no_such_part:register not loaded: "
        "No module named 'synib_no_such_part'\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch"], "synib: error: argument COMMAND: invalid choice: 'nosuch'"),
        (["token"], "synib token: error: the following arguments are required: ACTION"),
        (["knobs", "--json", "--markdown"], "synib knobs: error: argument --markdown: not allowed"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: synib")


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"synib {metadata.version('synib')}\n"
