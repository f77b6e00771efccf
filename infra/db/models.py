"""SQLAlchemy 2 models of the service's tables (migrations/ changes them).

String UUID primary keys, timezone-aware UTC timestamps, JSON columns for specs and metrics.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class JobStatus(StrEnum):
    """A job's life: queued -> running -> succeeded | failed; cancel: cancelling -> cancelled
    (a queued job is cancelled at once); a running job whose worker died goes back to queued."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class TrialStatus(StrEnum):
    """``stopped``: ended early by the scheduler (ASHA), a normal end."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"


class DatasetStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


# The columns hold the plain strings (a StrEnum member equals its value).
JOB_STATUSES: tuple[str, ...] = tuple(JobStatus)
JOB_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
JOB_ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING})
# A worker holds a job (its lease, renewed by heartbeats) while it is in one of these.
JOB_LEASED = (JobStatus.RUNNING, JobStatus.CANCELLING)
TRIAL_STATUSES: tuple[str, ...] = tuple(TrialStatus)
TRIAL_TERMINAL = frozenset(
    {TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.CANCELLED, TrialStatus.STOPPED}
)
TRIAL_OPEN = (TrialStatus.PENDING, TrialStatus.RUNNING)
DATASET_STATUSES: tuple[str, ...] = tuple(DatasetStatus)
EVENT_TYPES = ("status", "trial", "epoch", "report")
ARTIFACT_KINDS = ("model", "report")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A fresh string UUID (36 chars)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; returns aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDict = dict[str, Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), JSONDict: JSON()}


def _uuid_pk() -> Mapped[str]:
    return mapped_column(String(36), primary_key=True, default=new_id)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = _uuid_pk()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = _uuid_pk()
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    builtin_name: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[JSONDict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=DatasetStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(String(500))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    summary: Mapped[JSONDict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The housekeeping's resends of its synib.make_dataset message (the API sends the first on
    # creation): the last one and how many, for the backoff; the broker is never inspected.
    last_sent_at: Mapped[datetime | None]
    send_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The PID of the data (synib.dataset_pid): {"status": queued|running|succeeded|failed,
    # "clusters", "pairs": [PID.to_json()...], "verdict", "error"}; None until requested.
    pid: Mapped[JSONDict | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_owner_status_created", "owner_id", "status", "created_at"),
        # The job list's order (created_at DESC, id) without a sort of all the owner's rows.
        Index("ix_jobs_owner_created_id", "owner_id", "created_at", "id"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[str] = _uuid_pk()
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    spec: Mapped[JSONDict] = mapped_column(default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    trials_total: Mapped[int] = mapped_column(Integer, default=0)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    references: Mapped[JSONDict | None]
    report: Mapped[JSONDict | None]
    # {method: trial id} the report selected (set with the report; read by the jobs list)
    best_trials: Mapped[JSONDict | None]
    task_id: Mapped[str | None] = mapped_column(String(64))
    # The housekeeping's resends of its synib.run_job message since the job was last queued (the
    # first is sent when it is queued): the last one and how many, for the backoff.
    last_sent_at: Mapped[datetime | None]
    send_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("job_id", "trial_key"),)

    id: Mapped[str] = _uuid_pk()
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trial_key: Mapped[str] = mapped_column(String(500))
    method: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[JSONDict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.PENDING)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[JSONDict] = mapped_column(default=dict)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[JSONDict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[str] = _uuid_pk()
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[str | None] = mapped_column(ForeignKey("trials.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[JSONDict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerPresence(Base):
    """A training worker that consumes the queue, renewed every ``worker_presence_interval_s``
    (``worker.heartbeat.WorkerPresence``) and removed when it stops; ``GET /ready`` counts the
    fresh ones."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # Celery's node name
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The pretrained models it can load (``ModelInfo.to_json()`` each, from
    # ``synib_spec.model_registry.discover_models``): ``GET /api/v1/models`` lists their union.
    models: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")


class DatasetFeature(Base):
    """Frozen features of one dataset modality by one pretrained model and pooling, computed
    once by a worker and reused by every trial and later job (``worker.features``).

    fingerprint: sha256 of (dataset sha256, model fingerprint, pooling, modality); path: the
    store-relative ``features/<fingerprint>.npy`` ((N, dim) float32); seconds: the extraction
    time (what a cache hit saves)."""

    __tablename__ = "dataset_features"
    __table_args__ = (
        UniqueConstraint("dataset_id", "fingerprint"),
        Index("ix_dataset_features_fingerprint", "fingerprint"),
    )

    id: Mapped[str] = _uuid_pk()
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    modality: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    pooling: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
