"""Shared schema pieces."""

from __future__ import annotations

from pydantic import BaseModel


class Message(BaseModel):
    detail: str


class ErrorItem(BaseModel):
    """One validation problem: ``loc`` path, ``msg`` reason, ``field`` the offending field."""

    loc: list[str | int]
    msg: str
    type: str
    field: str | None = None
