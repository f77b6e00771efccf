"""The README is the product's front door: its two commands stay true, and every document it
links exists."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_two_commands_come_first() -> None:
    head = README[: README.index("## Quickstart")]
    assert "make run" in head and "make test" in head
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_linked_document_is_in_the_repository() -> None:
    root = Path(__file__).resolve().parents[1]
    links = re.findall(r"\]\(([^)#]+\.md)\)", README)
    assert links, "the README links its docs"
    for link in links:
        assert (root / link).is_file(), link
