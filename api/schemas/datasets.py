"""Dataset schemas (DatasetPublic, DatasetsPublic, BuiltinDatasetCreate, DatasetPidRequest)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.schemas.common import MAX_SQL_INT, CleanText
from infra.db.models import DatasetStatus
from synib_spec.backbones import summary_kinds
from synib_spec.builtin import GENERATORS


class ModalitySummary(BaseModel):
    """One modality: its array's shape, its kind (``synib_spec.backbones.MODALITY_KINDS``;
    summaries of older uploads have none: the API answers the kind their number of axes gives)
    and, for audio, its sample rate."""

    model_config = ConfigDict(extra="allow")

    name: str
    shape: list[int]
    kind: str | None = None
    rate: int | None = None


class DatasetSummary(BaseModel):
    """What the validator found in the file (None while a built-in dataset is pending)."""

    model_config = ConfigDict(extra="allow")

    modalities: list[ModalitySummary] = []
    num_classes: int | None = None
    split_sizes: dict[str, int] = {}
    class_counts: Any = None
    group_counts: Any = None
    has_oracle: bool = False

    @model_validator(mode="after")
    def _kinds(self) -> DatasetSummary:
        """Every modality with its kind (``synib_spec.backbones.summary_kinds``)."""
        kinds = summary_kinds({"modalities": [m.model_dump() for m in self.modalities]})
        for modality in self.modalities:
            modality.kind = kinds.get(modality.name, modality.kind)
        return self


PID_STATUSES = ("queued", "running", "succeeded", "failed")


class PidPairPublic(BaseModel):
    """The PID of one pair of modalities about the label, in bits (``synib_core.metrics.pid``):
    redundancy + unique[a] + unique[b] + synergy = total = I(label; a, b)."""

    model_config = ConfigDict(extra="allow")

    modalities: list[str]
    target: str
    redundancy: float
    unique: dict[str, float]
    synergy: float
    total: float
    states: dict[str, int] = {}
    n: int


class DatasetPidPublic(BaseModel):
    """The dataset's PID (``POST /datasets/{id}/pid``): the status of the computation, the
    clusters per modality, one entry per pair of modalities and the verdict in words (or the
    error when it failed)."""

    status: Literal["queued", "running", "succeeded", "failed"]
    clusters: int | None = None
    pairs: list[PidPairPublic] = []
    verdict: str | None = None
    error: str | None = None


class DatasetPidRequest(BaseModel):
    """Optional body of ``POST /datasets/{id}/pid``: k-means states per modality (default:
    floor(sqrt(N / (20 K))) clipped to [2, 20], N samples, K classes)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    clusters: int | None = Field(default=None, ge=2, le=100)


class DatasetFeaturePublic(BaseModel):
    """Features a frozen pretrained model computed once for one modality of the dataset
    (cached and reused by every later trial and job with the same model and pooling)."""

    model_config = ConfigDict(from_attributes=True)

    modality: str
    model: str
    pooling: str
    fingerprint: str  # sha256 of the dataset, the model's fingerprint, the pooling, the modality
    dim: int
    seconds: float  # the extraction's time
    created_at: datetime


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    source: Literal["upload", "builtin"]
    builtin_name: str | None
    params: dict[str, Any]
    status: DatasetStatus
    error: str | None
    sha256: str | None
    size_bytes: int | None
    summary: DatasetSummary | None
    pid: DatasetPidPublic | None = None
    # The cached pretrained features of the dataset (empty until a job computes some).
    features: list[DatasetFeaturePublic] = []
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class BuiltinDatasetCreate(BaseModel):
    """A generated dataset: ``generator`` names a built-in generator (``synib_spec.builtin``);
    ``params`` are checked against its parameters (strictly typed, like every request body:
    ``"seed": false`` or ``"n_train": "300"`` is a 422)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: CleanText | None = Field(default=None, min_length=1, max_length=200)
    generator: str = Field(json_schema_extra={"enum": list(GENERATORS)})
    params: dict[str, Any] = Field(default={}, max_length=64)
    seed: int = Field(default=0, ge=0, le=MAX_SQL_INT)

    @field_validator("generator")
    @classmethod
    def _generator(cls, generator: str) -> str:
        if generator not in GENERATORS:
            raise ValueError(f"unknown generator {generator!r}; allowed: {', '.join(GENERATORS)}")
        return generator

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Plain JSON the generator can take: finite numbers (PostgreSQL's json type cannot
        store NaN or Infinity), strings, booleans, null and short lists of them; the generator
        checks names and ranges when the worker builds the dataset."""
        for key, value in params.items():
            _check_param(f"params.{key}", value)
        return params


def _check_param(field: str, value: Any, depth: int = 0) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int | float):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer of hundreds of digits
            finite = False
        if not finite:
            raise ValueError(f"{field}: expected a finite number, got {value!r}")
        return
    if isinstance(value, list) and depth < 2 and len(value) <= 1000:
        for i, item in enumerate(value):
            _check_param(f"{field}[{i}]", item, depth + 1)
        return
    raise ValueError(
        f"{field}: expected a number, string, boolean or a list of them, got {type(value).__name__}"
    )


class GeneratorParamPublic(BaseModel):
    name: str
    default: Any
    allowed: str


class GeneratorPublic(BaseModel):
    """A built-in generator: what it makes and its parameters (``synib_spec.builtin``)."""

    name: str
    help: str
    params: list[GeneratorParamPublic]


class GeneratorsPublic(BaseModel):
    data: list[GeneratorPublic]
