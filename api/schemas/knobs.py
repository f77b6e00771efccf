"""The vocabulary as the API serves it (``synib_spec.knobs.knob_table``): the shapes only; the
table itself is defined once, in ``synib_spec.knobs``."""

from __future__ import annotations

from pydantic import BaseModel

from api.schemas.models import BackboneVocabulary
from synib_spec.knobs import KnobType


class KnobPublic(BaseModel):
    """One knob: its type, default and allowed values, and the methods that read it."""

    name: str
    type: KnobType
    default: bool | int | float | str
    help: str
    group: str
    allowed: str  # the allowed values in words (what error messages say)
    choices: list[str] | None
    min: int | float | None  # an int knob's bounds stay integers
    max: int | float | None
    min_exclusive: bool
    max_exclusive: bool
    methods: list[str] | None  # None: every method reads it


class MethodPublic(BaseModel):
    name: str
    help: str


class KnobTable(BaseModel):
    """Every knob and every method (what the dashboard's forms and the docs are built from),
    and the backbone vocabulary (``synib_spec.backbones``: encoders and the modality kinds each
    reads, train modes, poolings)."""

    knobs: list[KnobPublic]
    methods: list[MethodPublic]
    backbones: BackboneVocabulary
