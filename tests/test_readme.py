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


def test_every_document_named_anywhere_is_in_the_repository() -> None:
    """Docs, help texts, code comments and examples name only documents a user has (they once
    pointed at design notes that never shipped)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    shipped = {Path(p).name for p in tracked if p.endswith(".md")}
    missing = []
    for path in tracked:
        if not path.endswith((".md", ".py", ".ts", ".yaml", ".yml", ".toml")):
            continue
        text = (root / path).read_text(errors="replace")
        for name in re.findall(r"\b([A-Za-z][A-Za-z0-9_-]*\.md)\b", text):
            if name not in shipped:
                missing.append(f"{path}: {name}")
    assert not missing, missing
