"""Service configuration: the only reader of environment variables (prefix ``SYNIB_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent
# Longest token lifetime (100 years): far beyond any policy, and an expiry date stays far below
# datetime's year 9999 (a lifetime of millions of days overflowed it).
MAX_TOKEN_TTL_DAYS = 36_500


class Settings(BaseSettings):
    """Settings of the API, the worker and the CLI.

    Derived defaults (``database_url``, ``artifact_dir``) follow ``state_dir`` unless given.
    """

    model_config = SettingsConfigDict(env_prefix="SYNIB_", extra="ignore", populate_by_name=True)

    state_dir: Path = Path(".synib")
    database_url: str = ""
    broker_url: str = "filesystem://"
    artifact_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_mb: float = Field(default=512, gt=0)
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SYNIB_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
    )
    ray_tmp_dir: Path = Path("/tmp/synib_ray")
    # Keep one Ray per worker process across jobs (started when the process starts, warm
    # workers); false: every job starts and stops its own Ray (memory freed between jobs).
    ray_keep_alive: bool = True
    # Ray worker processes a kept Ray holds warm (torch and the training code imported, about
    # 0.35 GB each); trials and references run in them. None: one per CPU plus one per CPU up
    # to 4 more, for the reference tasks beside the trials (worker/ray_session.py).
    ray_warm_workers: int | None = Field(default=None, ge=1)
    # Idle Ray worker processes a kept local Ray holds ready for the next job's Tune actors
    # (Ray Tune imported, about 0.2 GB each). None: one per CPU; 0: none (worker/actor_prestart.py).
    ray_prestart_actors: int | None = Field(default=None, ge=0)
    worker_concurrency: int = Field(default=1, ge=1)
    cpus: int | None = Field(default=None, ge=1)
    # GPUs the worker's local Ray may hand to trials (None: what Ray detects).
    gpus: int | None = Field(default=None, ge=0)
    static_dir: Path = _REPO_ROOT / "frontend" / "dist"
    config_dir: Path = Path("~/.config/synib").expanduser()
    rate_limit_per_minute: int = Field(default=600, ge=1)
    # Default lifetime of new tokens (``synib token create`` without --expires-days, and the
    # admin token ``synib serve`` issues); None: they never expire.
    token_ttl_days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_TTL_DAYS)
    # Reliability (worker/reconciler.py): a running job's worker writes heartbeat_at every
    # heartbeat_interval_s; a job whose heartbeat is older than heartbeat_stale_s is resumed
    # elsewhere; a queued job older than requeue_queued_after_s whose message is not in the
    # broker is sent again; each worker reconciles every reconcile_interval_s (0: never).
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    heartbeat_stale_s: float = Field(default=120.0, gt=0)
    reconcile_interval_s: float = Field(default=30.0, ge=0)
    requeue_queued_after_s: float = Field(default=120.0, ge=0)
    # Worker database writes retry with exponential backoff for at most this long.
    db_retry_max_s: float = Field(default=60.0, ge=0)
    # Memory (MiB) each trial may allocate beyond its process's footprint at the start
    # (RLIMIT_DATA; None: no cap). A job's resources.memory_mb_per_trial may ask for less.
    trial_memory_mb: int | None = Field(default=None, ge=64)
    # TEST ONLY: fault-injection rules for the trials (see worker/faults.py), e.g.
    # "raise_at_epoch:lambda=1|:2". Off (empty) by default; not reachable through the API.
    fault_injection: str = ""

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'synib.db'}"
        if self.artifact_dir is None:
            self.artifact_dir = self.state_dir / "artifacts"
        self.config_dir = self.config_dir.expanduser()
        return self

    @property
    def artifact_root(self) -> Path:
        """The artifact store folder (always set after validation)."""
        assert self.artifact_dir is not None
        return self.artifact_dir

    @property
    def broker_dir(self) -> Path:
        """Folder of the ``filesystem://`` broker (embedded mode)."""
        return self.state_dir / "broker"

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
