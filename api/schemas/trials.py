"""Trial, epoch-metric and artifact schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from infra.db.models import TrialStatus


class TrialPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    trial_key: str
    method: str
    seed: int
    config: dict[str, Any]
    status: TrialStatus
    failure_reason: str | None
    epochs_done: int
    best_epoch: int | None
    metrics: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime | None


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class EpochMetricsPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    epoch: int
    metrics: dict[str, Any]


class TrialMetricsPublic(BaseModel):
    data: list[EpochMetricsPublic]


class ArtifactPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    trial_id: str | None
    kind: str
    name: str
    sha256: str
    size_bytes: int
    created_at: datetime


class ArtifactsPublic(BaseModel):
    data: list[ArtifactPublic]
    count: int
