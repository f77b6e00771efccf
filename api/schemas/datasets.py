"""Dataset schemas (DatasetPublic, DatasetsPublic, BuiltinDatasetCreate)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import MAX_SQL_INT, CleanText

BUILTIN_GENERATORS = ("xor_spurious", "xor_pid", "digits_pairs")


class ModalitySummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    shape: list[int]


class DatasetSummary(BaseModel):
    """What the validator found in the file (None while a built-in dataset is pending)."""

    model_config = ConfigDict(extra="allow")

    modalities: list[ModalitySummary] = []
    num_classes: int | None = None
    split_sizes: dict[str, int] = {}
    class_counts: Any = None
    group_counts: Any = None
    has_oracle: bool = False


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    source: Literal["upload", "builtin"]
    builtin_name: str | None
    params: dict[str, Any]
    status: Literal["pending", "ready", "failed"]
    error: str | None
    sha256: str | None
    size_bytes: int | None
    summary: DatasetSummary | None
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class BuiltinDatasetCreate(BaseModel):
    """A generated dataset: ``generator`` one of xor_spurious, xor_pid, digits_pairs."""

    model_config = ConfigDict(extra="forbid")

    name: CleanText | None = Field(default=None, min_length=1, max_length=200)
    generator: Literal["xor_spurious", "xor_pid", "digits_pairs"]
    params: dict[str, Any] = {}
    seed: int = Field(default=0, ge=0, le=MAX_SQL_INT)
