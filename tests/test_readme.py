"""The README is the product's front door: its two commands and its knob table stay true."""

from __future__ import annotations

import re
from pathlib import Path

from synib_core.config import KNOBS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_two_commands_come_first() -> None:
    head = README[: README.index("## Quickstart")]
    assert "make run" in head and "make test" in head
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_knob_table_lists_every_knob_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| \w+ \| ([^|]+) \|", README, re.M))
    assert set(rows) == set(KNOBS)
    for name, spec in KNOBS.items():
        default = spec.default
        shown = rows[name].strip()
        if isinstance(default, bool):
            assert shown == str(default).lower(), name
        elif default == "":
            assert shown == '""', name
        else:
            assert shown == str(default), name
