"""Every SQL statement of the service lives in ``infra/db`` (the crud modules): no other module of
ours builds a statement (SQLAlchemy's ``select``, ``update``, ``text``, ...) or runs one on a
session (``session.execute``, ``session.scalars``, ``session.get(Job, ...)``). The API, the
worker and the housekeeper call ``infra.db.crud`` functions instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.db import models

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("synib_spec", "infra", "api", "worker", "synib_client")
STATEMENT_BUILDERS = {
    "select",
    "insert",
    "update",
    "delete",
    "text",
    "func",
    "and_",
    "or_",
    "not_",
    "cast",
    "exists",
    "literal",
}
SESSION_QUERIES = {"execute", "scalars", "scalar", "query"}
MODELS = {name for name, value in vars(models).items() if isinstance(value, type)} & {
    mapper.class_.__name__ for mapper in models.Base.registry.mappers
}


def sql_outside_crud(source: str, filename: str) -> list[str]:
    """``"<line>: <what>"`` for each statement built or run in ``source``, in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in STATEMENT_BUILDERS:
                    found.append((node.lineno, f"imports {node.module}.{alias.name}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = ast.unparse(node.func.value)
            if not receiver.split(".")[-1].endswith("session"):
                continue
            first = node.args[0] if node.args else None
            if node.func.attr in SESSION_QUERIES or (
                node.func.attr == "get" and isinstance(first, ast.Name) and first.id in MODELS
            ):
                found.append((node.lineno, f"{receiver}.{node.func.attr}(...)"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_check_catches_statements_and_session_queries() -> None:
    source = "\n".join(
        [
            "from sqlalchemy import select, update",
            "from sqlalchemy.orm import Session",
            "def f(session, self):",
            "    session.execute(select(Job))",
            "    self.session.scalars(stmt)",
            "    job = session.get(Job, job_id)",
            "    value = settings.get(Job, 1)",
            "    options.get('x')",
            "    conn.execute('PRAGMA journal_mode=WAL')",
        ]
    )
    assert sql_outside_crud(source, "probe.py") == [
        "1: imports sqlalchemy.select",
        "1: imports sqlalchemy.update",
        "4: session.execute(...)",
        "5: self.session.scalars(...)",
        "6: session.get(...)",
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_sql_lives_only_in_infra_db(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT).parts[:2] != ("infra", "db")
        and (hits := sql_outside_crud(path.read_text(), str(path)))
    }
    assert not offenders, (
        f"SQL outside infra/db (use or add an infra.db.crud function): {offenders}"
    )
