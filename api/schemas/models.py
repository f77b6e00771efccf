"""Pretrained-model schemas: ModelPublic / ModelsPublic (``GET /api/v1/models``) and the
backbone vocabulary the dashboard builds its backbone rows from (served with the knob table).
The fields are ``synib_spec.backbones.ModelInfo``'s, defined there once."""

from __future__ import annotations

from pydantic import BaseModel


class ModelPublic(BaseModel):
    """A pretrained model the serving workers offer (``synib_spec.backbones.ModelInfo``):
    ``source`` is its PyPI package or its folder on the workers; ``workers`` counts the serving
    workers that offer it (an entry is the first such worker's description)."""

    name: str
    modality: str
    output_dim: int
    licence: str
    loader: str
    source: str
    fingerprint: str
    description: str
    workers: int


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class EncoderPublic(BaseModel):
    """An encoder and the modality kinds it reads (``synib_spec.backbones.ACCEPTS``)."""

    name: str
    accepts: list[str]


class BackboneVocabulary(BaseModel):
    """What a backbone spec may say (``synib_spec.backbones.vocabulary()``)."""

    encoders: list[EncoderPublic]
    train_modes: list[str]
    poolings: list[str]
    modality_kinds: list[str]
