"""Service configuration: the only reader of environment variables (prefix ``SYNIB_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synib_spec.jobs import DEFAULT_LIMITS, MAX_TRIALS, SpecLimits

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


def check_storage_uri(value: str) -> str:
    """``s3://bucket[/prefix]`` without a trailing slash, or empty; ValueError naming the field
    otherwise (credentials never go in it: the AWS environment or ~/.aws/config hold them)."""
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if parts.scheme != "s3" or not bucket:
        raise ValueError(
            f"storage_uri: {value!r} is not s3://bucket/prefix (empty: the local artifact_dir)"
        )
    if "@" in bucket or ":" in bucket or parts.query or parts.fragment:
        raise ValueError(
            "storage_uri: give only s3://bucket/prefix; credentials come from the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or ~/.aws/config, the endpoint from "
            "s3_endpoint_url"
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"storage_uri: the prefix {prefix!r} has an empty, '.' or '..' part")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def check_endpoint_url(value: str) -> str:
    """``http(s)://host[:port]`` or empty; ValueError naming the field otherwise."""
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"s3_endpoint_url: {value!r} is not http(s)://host[:port]")
    if parts.username or parts.password or parts.path or parts.query:
        raise ValueError(
            "s3_endpoint_url: give only http(s)://host[:port]; credentials come from the "
            "environment or ~/.aws/config"
        )
    return value


class Settings(BaseSettings):
    """Settings of the API, the worker and the CLI.

    Derived defaults (``database_url``, ``artifact_dir``) follow ``state_dir`` unless given.
    """

    model_config = SettingsConfigDict(env_prefix="SYNIB_", extra="ignore", populate_by_name=True)

    state_dir: Path = Field(
        Path(".synib"), description="embedded state: SQLite database, broker file, artifacts"
    )
    database_url: str = Field(
        "",
        description="e.g. postgresql+psycopg://user:pw@host:5432/synib; "
        "empty: sqlite:///<state_dir>/synib.db",
    )
    broker_url: str = Field(
        "",
        description="e.g. redis://host:6379/0; empty: kombu's SQLAlchemy transport on "
        "<state_dir>/broker.sqlite (embedded mode, no server)",
    )
    artifact_dir: Path | None = Field(
        None, description="datasets, model artifacts and reports; empty: <state_dir>/artifacts"
    )
    host: str = Field("127.0.0.1", description="where the API listens")
    port: int = Field(8000, ge=1, le=65535, description="where the API listens")
    log_level: LogLevel = Field(
        "info",
        description="log level of synib serve, api (uvicorn), worker and housekeeper (Celery); "
        "their --log-level flag wins",
    )
    max_upload_mb: float = Field(512, gt=0, description="upload size limit (413 above it)")
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SYNIB_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
        description="a Ray cluster to join (also RAY_ADDRESS); empty: a local Ray per worker",
    )
    # Issue #22 item 1: the artifact store in an S3-compatible bucket (docs/OPERATIONS.md,
    # "Object storage"). Credentials are never settings: the AWS environment variables or
    # ~/.aws/config (pyarrow's default AWS chain).
    storage_uri: str = Field(
        "",
        description="where datasets, model artifacts, reports and (unless tune_storage is set) "
        "trial checkpoints live: s3://bucket/prefix in an S3-compatible store (AWS S3, MinIO, "
        "Ceph RGW); empty: the local folder <artifact_dir>",
    )
    s3_endpoint_url: str = Field(
        "",
        description="the S3 endpoint of storage_uri, e.g. http://127.0.0.1:9000 for MinIO; "
        "empty: AWS S3",
    )
    s3_region: str = Field(
        "", description="the bucket's region; empty: AWS_DEFAULT_REGION, ~/.aws/config or us-east-1"
    )
    tune_storage: str = Field(
        "",
        description="where Ray Tune keeps each job's experiment (trial checkpoints: what a job "
        "resumes from after its worker died): a folder or a URI every Ray node reaches; "
        "empty: <storage_uri>/tune, or <artifact_dir>/tune",
    )
    worker_concurrency: int = Field(1, ge=1, description="jobs per worker process at once")
    cpus: int | None = Field(None, ge=1, description="CPUs of a worker's local Ray; empty: all")
    gpus: int | None = Field(
        None, ge=0, description="GPUs a worker's local Ray hands to trials; empty: detected"
    )
    static_dir: Path = Field(
        _REPO_ROOT / "frontend" / "dist", description="the built dashboard the API serves at /"
    )
    config_dir: Path = Field(
        Path("~/.config/synib").expanduser(),
        description="where synib serve saves credentials.json (the client reads it there)",
    )
    rate_limit_per_minute: int = Field(
        600, ge=1, description="requests per token per minute and API process (429 above it)"
    )
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes synib api runs on its port (each has its own pool, token "
        "cache and rate-limit counts; /metrics sums the request metrics of all)",
    )
    db_pool_size: int = Field(
        20,
        ge=1,
        le=1000,
        description="PostgreSQL connections each API process keeps for its event-loop token "
        "lookups (up to 10 more under bursts)",
    )
    auth_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="seconds an API process reuses a verified token without asking the "
        "database (a revoked token stops working within it); 0: every request",
    )
    token_ttl_days: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKEN_TTL_DAYS,
        description="lifetime of new tokens (synib token create without --expires-days, the "
        "admin token of synib serve); empty: never expire",
    )
    heartbeat_interval_s: float = Field(
        10.0, gt=0, description="how often a running job's worker renews its lease"
    )
    heartbeat_stale_s: float = Field(
        120.0,
        gt=0,
        description="a running job whose lease is older goes back to the queue and is resumed "
        "elsewhere from its trials' checkpoints",
    )
    reconcile_interval_s: float = Field(
        30.0, ge=0, description="seconds between housekeeping passes (0: none)"
    )
    requeue_queued_after_s: float = Field(
        120.0,
        ge=0,
        description="a queued job (or pending dataset) is sent again this long after its last "
        "send, then after twice that, and so on (its message may have been lost)",
    )
    job_soft_time_limit_s: int = Field(
        48 * 3600,
        ge=1,
        description="at this age a job's trials are stopped and it fails with the reason",
    )
    job_hard_time_limit_s: int = Field(
        49 * 3600,
        ge=1,
        description="at this age a job's worker process is killed (the job is then resumed); "
        "must exceed the soft limit",
    )
    db_retry_max_s: float = Field(
        60.0, ge=0, description="how long the worker retries a database write while it is down"
    )
    trial_memory_mb: int | None = Field(
        None,
        ge=64,
        description="memory (MiB) a trial may allocate beyond its process's footprint; a job's "
        "resources.memory_mb_per_trial may ask for less; empty: no cap",
    )
    # issue 21 item 9: artifact storage errors and temporary files
    storage_retry_tries: int = Field(
        5,
        ge=1,
        description="how many times the worker tries a write to the artifact store that fails "
        "(not writable, full) before it fails the dataset or job",
    )
    storage_retry_delay_s: float = Field(
        2.0,
        ge=0,
        description="the wait before the worker's second try of a failed artifact write; "
        "doubled before each further try",
    )
    temp_file_max_age_s: float = Field(
        3600.0,
        gt=0,
        description="the housekeeping deletes files in <artifact_dir>/.tmp not modified for "
        "this long (left by interrupted uploads or a crashed process)",
    )
    # Issue #21 item 2: a size budget for built-in datasets.
    max_builtin_dataset_mb: float = Field(
        1024,
        gt=0,
        description="largest built-in dataset (MiB of arrays, estimated from its parameters) "
        "that may be registered or generated; 422 above it",
    )
    # Event streams (issue #21, item 6)
    max_streams_per_token: int = Field(
        8,
        ge=1,
        le=10_000,
        description="open event streams (GET /jobs/{id}/events) per token and API process "
        "(429 above it)",
    )
    max_streams_per_process: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="open event streams per API process, all tokens together (503 above it)",
    )
    # Limits, quotas and fair scheduling between users (issue #21 item 5; docs/USER_GUIDE.md,
    # "Limits and quotas"). The spec limits' defaults live in synib_spec.jobs.DEFAULT_LIMITS.
    max_epochs: int = Field(
        DEFAULT_LIMITS.max_epochs,
        ge=1,
        description="most epochs a job's trials may train (a 422 names the field above it)",
    )
    max_trials_per_job: int = Field(
        DEFAULT_LIMITS.max_trials,
        ge=1,
        le=MAX_TRIALS,
        description="most trials one job may run: methods x sweep points x samples x seeds (422)",
    )
    min_cpus_per_trial: float = Field(
        DEFAULT_LIMITS.min_cpus_per_trial,
        gt=0,
        description="fewest CPUs a trial may ask for (resources.cpus_per_trial; 422 below it)",
    )
    min_gpus_per_trial: float = Field(
        DEFAULT_LIMITS.min_gpus_per_trial,
        gt=0,
        le=1,
        description="a trial asks for no GPU or at least this share of one "
        "(resources.gpus_per_trial; 422 in between)",
    )
    max_active_jobs_per_user: int = Field(
        20,
        ge=1,
        description="queued, running or cancelling jobs a user may have; a submission or rerun "
        "above it answers 429 with Retry-After",
    )
    max_running_jobs_per_user: int = Field(
        2,
        ge=1,
        description="jobs of one user the workers run at once; the others wait in the queue "
        "while other users' jobs go first (docs/ARCHITECTURE.md, 'Fair scheduling')",
    )
    queue_wait_s: float = Field(
        10.0,
        gt=0,
        description="how often a worker looks again at a queued job whose user has "
        "max_running_jobs_per_user jobs running",
    )
    max_storage_mb_per_user: float = Field(
        10240,
        gt=0,
        description="dataset and artifact storage (MiB) a user may hold; an upload, a built-in "
        "dataset, a job or a rerun above it answers 413",
    )
    max_datasets_per_user: int = Field(
        100, ge=1, description="datasets a user may hold; one more answers 409"
    )

    # Issue 21 items 1, 10, 13: HTTP limits and readiness (docs/OPERATIONS.md).
    max_json_body_kb: int = Field(
        1024,
        ge=1,
        le=1024 * 1024,
        description="largest JSON request body (KiB); 413 above it (uploads: max_upload_mb)",
    )
    body_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="the longest wait for the next piece of a request body, and for a whole "
        "JSON body; 408 after it",
    )
    api_docs: bool = Field(
        False,
        description="serve the interactive API docs at /docs and /redoc (they load scripts "
        "from a CDN); /openapi.json is always served",
    )
    api_graceful_shutdown_s: int = Field(
        10,
        ge=0,
        description="on SIGTERM the API waits this long for open requests and event streams, "
        "then closes them",
    )
    api_max_connections: int | None = Field(
        None,
        ge=1,
        description="connections and requests at once per API process (uvicorn's "
        "limit_concurrency): 503 above it; empty: no limit",
    )
    model_dir: Path | None = Field(
        None,
        description="a worker's pretrained models: one folder per model, <model_dir>/<name>/ "
        "holding synib-model.json and a Hugging Face config.json (GET /api/v1/models lists "
        "them with the models of installed packages); empty: the packaged ones only",
    )
    worker_presence_interval_s: float = Field(
        15.0, gt=0, description="how often a worker renews its presence row (GET /ready)"
    )
    worker_presence_stale_s: float = Field(
        60.0,
        gt=0,
        description="a worker whose presence row is older is not counted as serving by /ready",
    )

    # A killed worker's trials resume from their checkpoints (see worker/tune_runner.new_tuner).
    tune_checkpoints_kept: int | None = Field(
        None,
        ge=1,
        description="checkpoints Ray Tune keeps per trial while a job runs; empty: all of them "
        "until the job ends (a number bounds the disk a trial takes, but a worker killed while "
        "Tune saves its experiment state may then leave a trial that cannot resume)",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_name(cls, value: Any) -> str:
        return log_level_name(value)

    @field_validator("model_dir", mode="before")
    @classmethod
    def _no_model_dir_when_empty(cls, value: Any) -> Any:
        """``SYNIB_MODEL_DIR=`` (empty) means none, not the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("storage_uri")
    @classmethod
    def _storage_uri(cls, value: str) -> str:
        return check_storage_uri(value)

    @field_validator("s3_endpoint_url")
    @classmethod
    def _s3_endpoint_url(cls, value: str) -> str:
        return check_endpoint_url(value)

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
        """``tune_storage``, else ``<storage_uri>/tune``, else the absolute folder
        ``<artifact_dir>/tune``."""
        if self.tune_storage:
            return self.tune_storage
        if self.storage_uri:
            return f"{self.storage_uri}/tune"
        return str(self.artifact_root.resolve() / "tune")

    @property
    def housekeeper_schedule_file(self) -> Path:
        """Where the housekeeper's Celery beat keeps when each periodic task last ran."""
        return self.state_dir / "housekeeper-schedule"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def spec_limits(self) -> SpecLimits:
        """The limits a submitted job spec must keep (``synib_spec.jobs.parse_job_spec``)."""
        return SpecLimits(
            max_trials=self.max_trials_per_job,
            max_epochs=self.max_epochs,
            min_cpus_per_trial=self.min_cpus_per_trial,
            min_gpus_per_trial=self.min_gpus_per_trial,
        )

    @property
    def max_storage_bytes_per_user(self) -> int:
        return int(self.max_storage_mb_per_user * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) of every setting: ``synib settings`` prints it."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else str(field.default)
        rows.append((f"SYNIB_{name.upper()}", default, field.description or ""))
    return rows
