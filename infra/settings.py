"""Service configuration: the only reader of environment variables (prefix ``SYNIB_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent
# Longest token lifetime (100 years): far beyond any policy, and an expiry date stays far below
# datetime's year 9999 (a lifetime of millions of days overflowed it).
MAX_TOKEN_TTL_DAYS = 36_500
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
# kombu's SQLAlchemy transport on a SQLite file: the broker of the embedded mode.
EMBEDDED_BROKER_SCHEME = "sqla+sqlite:///"


def log_level_name(value: Any) -> str:
    """``value`` as one of LOG_LEVELS (case-insensitive); ValueError naming the allowed ones."""
    name = str(value).strip().lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"log_level: {value!r} is not one of {', '.join(LOG_LEVELS)}")
    return name


class Settings(BaseSettings):
    """Settings of the API, the worker and the CLI.

    Derived defaults (``database_url``, ``artifact_dir``) follow ``state_dir`` unless given.
    """

    model_config = SettingsConfigDict(env_prefix="SYNIB_", extra="ignore", populate_by_name=True)

    state_dir: Path = Path(".synib")
    database_url: str = ""
    # Empty: kombu's SQLAlchemy transport on a SQLite file in the state folder (embedded mode,
    # no server); full mode sets redis://...
    broker_url: str = ""
    artifact_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Log level of `synib serve`, `synib api` (uvicorn) and `synib worker` (Celery); their
    # --log-level flag wins over it.
    log_level: LogLevel = "info"
    max_upload_mb: float = Field(default=512, gt=0)
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SYNIB_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
    )
    # Where Ray Tune keeps each job's experiment (trial checkpoints and results, what a job
    # resumes from after its worker died): a local folder or a URI such as s3://bucket/synib
    # that every Ray node reaches. Empty: <artifact_dir>/tune.
    tune_storage: str = ""
    worker_concurrency: int = Field(default=1, ge=1)
    cpus: int | None = Field(default=None, ge=1)
    # GPUs the worker's local Ray may hand to trials (None: what Ray detects).
    gpus: int | None = Field(default=None, ge=0)
    static_dir: Path = _REPO_ROOT / "frontend" / "dist"
    config_dir: Path = Path("~/.config/synib").expanduser()
    rate_limit_per_minute: int = Field(default=600, ge=1)
    # API processes `synib api` starts on its port (uvicorn workers; each has its own event loop,
    # pool, token cache and rate-limit counts; /metrics sums the request metrics of all).
    api_workers: int = Field(default=1, ge=1, le=64)
    # PostgreSQL connections each API process keeps for token lookups on its event loop, plus
    # up to 10 more under bursts (connections beyond the pool are opened and closed per request).
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    # An API process reuses a verified token for this long without asking the database again
    # (api/token_cache.py): a revoked token stops working within it. 0: look up every request.
    auth_cache_ttl_s: float = Field(default=5.0, ge=0, le=300)
    # Default lifetime of new tokens (``synib token create`` without --expires-days, and the
    # admin token ``synib serve`` issues); None: they never expire.
    token_ttl_days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_TTL_DAYS)
    # Reliability (worker/housekeeping.py): a running job's worker writes heartbeat_at every
    # heartbeat_interval_s; a job whose heartbeat is older than heartbeat_stale_s goes back to
    # the queue (resumed elsewhere); a queued job is sent again requeue_queued_after_s after its
    # last send, then after twice that, and so on (its message may have been lost); the
    # housekeeper (`synib housekeeper`) runs a pass every reconcile_interval_s (0: never).
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_stale_s: float = Field(default=120.0, gt=0)
    reconcile_interval_s: float = Field(default=30.0, ge=0)
    requeue_queued_after_s: float = Field(default=120.0, ge=0)
    # A job's time limits (seconds from its task's start; a sweep may take a day): at the soft
    # one its trials are stopped and it fails ("the job exceeded the worker's time limit"); at
    # the hard one its pool process is killed (the housekeeping then resumes the job).
    job_soft_time_limit_s: int = Field(default=48 * 3600, ge=1)
    job_hard_time_limit_s: int = Field(default=49 * 3600, ge=1)
    # Worker database writes retry with exponential backoff for at most this long.
    db_retry_max_s: float = Field(default=60.0, ge=0)
    # Memory (MiB) each trial may allocate beyond its process's footprint at the start
    # (RLIMIT_DATA; None: no cap). A job's resources.memory_mb_per_trial may ask for less.
    trial_memory_mb: int | None = Field(default=None, ge=64)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_name(cls, value: Any) -> str:
        return log_level_name(value)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'synib.db'}"
        if not self.broker_url:
            self.broker_url = f"{EMBEDDED_BROKER_SCHEME}{self.state_dir / 'broker.sqlite'}"
        if self.artifact_dir is None:
            self.artifact_dir = self.state_dir / "artifacts"
        self.config_dir = self.config_dir.expanduser()
        if self.job_hard_time_limit_s <= self.job_soft_time_limit_s:
            raise ValueError(
                f"job_hard_time_limit_s ({self.job_hard_time_limit_s}) must exceed "
                f"job_soft_time_limit_s ({self.job_soft_time_limit_s}): the soft limit stops "
                "the trials and fails the job, the hard one kills the process"
            )
        return self

    @property
    def artifact_root(self) -> Path:
        """The artifact store folder (always set after validation)."""
        assert self.artifact_dir is not None
        return self.artifact_dir

    @property
    def embedded_broker_file(self) -> Path | None:
        """The SQLite file of the embedded broker (``sqla+sqlite:///...``), else None."""
        if not self.broker_url.startswith(EMBEDDED_BROKER_SCHEME):
            return None
        return Path(self.broker_url.removeprefix(EMBEDDED_BROKER_SCHEME))

    @property
    def tune_storage_path(self) -> str:
        """``tune_storage``, or the absolute folder ``<artifact_dir>/tune``."""
        return self.tune_storage or str(self.artifact_root.resolve() / "tune")

    @property
    def housekeeper_schedule_file(self) -> Path:
        """Where the housekeeper's Celery beat keeps when each periodic task last ran."""
        return self.state_dir / "housekeeper-schedule"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
