"""The vocabulary: every knob (type, default, bounds, help, the methods that read it) and every
method, from ``synib_spec.knobs``, and the backbone vocabulary from ``synib_spec.backbones`` (the
dashboard and the docs read it here)."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter

from api.deps import CurrentUser
from api.errors import AUTH_ERRORS
from api.schemas.knobs import KnobTable
from synib_spec.knobs import knob_table

router = APIRouter(prefix="/knobs", tags=["knobs"], responses=AUTH_ERRORS)


@lru_cache(maxsize=1)
def _table() -> KnobTable:
    return KnobTable.model_validate(knob_table())  # fixed for the life of the process


@router.get("", response_model=KnobTable)
async def read_knobs(_user: CurrentUser) -> KnobTable:
    """The knob table (``synib_spec.knobs.knob_table()``, the backbone vocabulary included)."""
    return _table()
