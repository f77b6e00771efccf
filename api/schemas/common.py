"""Shared schema pieces."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel

# Bounds of integers that reach SQL (LIMIT/OFFSET, ids compared with int4 columns): larger
# values would overflow the database's integer types and must be a 422, not a 500.
MAX_SQL_INT = 2**31 - 1


def reject_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters: refuse them as a user error."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


CleanText = Annotated[str, AfterValidator(reject_nul)]


class Message(BaseModel):
    detail: str


class ErrorItem(BaseModel):
    """One validation problem: ``loc`` path, ``msg`` reason, ``field`` the offending field."""

    loc: list[str | int]
    msg: str
    type: str
    field: str | None = None


class ValidationProblem(BaseModel):
    """A 422 body: ``detail`` lists the problems (FastAPI's shape, plus ``field``)."""

    detail: list[ErrorItem]
