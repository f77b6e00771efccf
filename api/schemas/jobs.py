"""Job schemas: JobCreate (the documented shape of a job spec), JobPublic, JobsPublic.

``JobCreate`` documents the spec in OpenAPI and checks its structure with strict types; what a
spec means (knobs, sweeps, rules between knobs, trial counts) is checked once, by
``synib_spec.jobs.parse_job_spec`` (``JobCreate.to_spec``), which the worker calls too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from sqlalchemy import inspect

from api.schemas.common import CleanText
from infra.db.models import JobStatus, TrialStatus
from synib_spec.backbones import ENCODERS, MODEL_NAME, POOLINGS, TRAIN_MODES
from synib_spec.jobs import NO_LIMITS, JobSpec, SpecLimits, parse_job_spec, sweep_label
from synib_spec.knobs import INT_MAX, KNOBS_LIST, METHODS, Knob, method_reads
from synib_spec.selection import best_point

JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


def knob_schema(knob: Knob) -> dict[str, Any]:
    """The JSON Schema of one knob's value, from the knob table: its JSON type (an integer knob
    takes an integer, a float knob any number), its choices and its bounds."""
    schema: dict[str, Any] = {"type": JSON_TYPES[knob.type], "description": knob.help}
    if knob.choices is not None:
        schema["enum"] = list(knob.choices)
    bound = int if knob.type == "int" else float
    if knob.min is not None:
        schema["exclusiveMinimum" if knob.min_exclusive else "minimum"] = bound(knob.min)
    if knob.max is not None:
        schema["exclusiveMaximum" if knob.max_exclusive else "maximum"] = bound(knob.max)
    elif knob.type == "int":
        schema["maximum"] = INT_MAX
    return schema


def _knob_values_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "knob -> value (GET /api/v1/knobs lists every knob)",
        "properties": {k.name: knob_schema(k) for k in KNOBS_LIST},
        "additionalProperties": False,
    }


# The server checks knob values with the knob table (``synib_spec.knobs.parse_knob``, strict);
# the schema says the same from the same table, so that it refuses what the server refuses.
KnobValues = Annotated[dict[str, Any], WithJsonSchema(_knob_values_schema())]


class MethodEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    config: KnobValues = {}


class SweepSpec(BaseModel):
    """grid|choice: ``values``; uniform|loguniform (float knobs): ``low`` < ``high``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["grid", "choice", "uniform", "loguniform"]
    values: list[Any] | None = None  # of the knob's type, checked against the knob table
    low: float | None = None
    high: float | None = None


class SchedulerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    type: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(default=1, ge=1, le=2**31 - 1)
    reduction_factor: float = Field(default=2.0, gt=1)


class ResourcesSpec(BaseModel):
    """What one trial asks for. The service sets a floor (settings min_cpus_per_trial and
    min_gpus_per_trial: a GPU share is 0 or at least the latter); a 422 names it."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)
    # Memory (MiB) each trial may allocate beyond its process's runtime footprint (the worker's
    # trial_memory_mb caps it too); a trial above it fails with "out of memory: ...".
    memory_mb_per_trial: int | None = Field(default=None, ge=64, le=4_194_304)


class BackboneEntry(BaseModel):
    """The encoder of one modality (``synib_spec.backbones``). ``model``, ``train`` and
    ``pooling`` only with ``encoder: pretrained`` (``model``: a name from GET /api/v1/models);
    a modality without an entry gets the ``encoder`` knob."""

    model_config = ConfigDict(extra="forbid", strict=True)

    encoder: str = Field(json_schema_extra={"enum": list(ENCODERS)})
    model: str | None = Field(
        default=None, max_length=100, json_schema_extra={"pattern": MODEL_NAME.pattern}
    )
    train: str = Field(
        default="frozen",
        json_schema_extra={"enum": list(TRAIN_MODES)},
        description="frozen: features computed once and cached, a head trained on them; "
        "last_layers / full: the model's last block / all of it trained in every trial",
    )
    pooling: str = Field(default="mean", json_schema_extra={"enum": list(POOLINGS)})


# Modality names as ``synib_spec.backbones.parse_backbones`` accepts them.
MODALITY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_]*$"


class JobCreate(BaseModel):
    """A job: methods x sweep x seeds on one dataset. Without ``sweep``, SynIB's penalty weight
    is swept over its default decades; ``"sweep": {}`` trains one point per method."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: CleanText | None = Field(default=None, min_length=1, max_length=200)
    dataset_id: CleanText = Field(min_length=1, max_length=36)
    methods: list[str | MethodEntry] = Field(min_length=1)
    config: KnobValues = {}
    sweep: dict[str, SweepSpec] | None = Field(
        default=None, json_schema_extra={"propertyNames": {"enum": [k.name for k in KNOBS_LIST]}}
    )
    num_samples: int = Field(default=4, ge=1, le=1000)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=100)
    epochs: int | None = Field(default=None, ge=1, le=2**31 - 1)
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: ResourcesSpec = ResourcesSpec()
    max_concurrent_trials: int | None = Field(default=None, ge=1, le=2**31 - 1)
    baseline: str = Field(default="vanilla", json_schema_extra={"enum": list(METHODS)})
    backbones: dict[str, BackboneEntry] | None = Field(
        default=None,
        description="modality -> its encoder; pretrained models: GET /api/v1/models",
        json_schema_extra={"propertyNames": {"pattern": MODALITY_NAME}},
    )

    def to_spec(self, *, limits: SpecLimits = NO_LIMITS) -> JobSpec:
        """The typed spec (``SpecError`` naming the field when it means nothing runnable or
        breaks the service's ``limits``)."""
        raw = self.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        if self.sweep is not None:
            raw["sweep"] = {k: v.model_dump(exclude_none=True) for k, v in self.sweep.items()}
        return parse_job_spec(raw, limits=limits)


def dataset_problem(spec: JobSpec, summary: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(field, reason) when a trial needs what the dataset lacks: oracle coordinates for
    ``mask: oracle``, a modality named in ``modality_weights``. None when it fits, or while the
    dataset is not validated yet (the worker checks it then)."""
    if not summary:
        return None
    from synib_spec.knobs import method_reads

    modalities = [str(m.get("name")) for m in summary.get("modalities") or []]
    for method in spec.method_names():
        oracle = method_reads(method, "mask") and "oracle" in spec.knob_values(method, "mask")
        if oracle and not summary.get("has_oracle"):
            reason = (
                "'oracle' needs the dataset's oracle coordinates (oracle_<modality> arrays); "
                f"this dataset has none (method {method!r})"
            )
            return "config.mask", reason
        if not method_reads(method, "modality_weights"):
            continue
        for text in spec.knob_values(method, "modality_weights"):
            names = [item.partition("=")[0].strip() for item in str(text).split(",")]
            unknown = sorted({n for n in names if n} - set(modalities))
            if unknown:
                reason = f"unknown modalities {unknown}; the dataset has {modalities}"
                return "config.modality_weights", reason
    return None


class BestTrial(BaseModel):
    trial_id: str
    config: dict[str, Any]
    val_acc: float | None
    test_acc: float | None
    synergy_acc: float | None


class HeadlineDelta(BaseModel):
    """The report's delta of a method against the baseline that its verdict is about
    (``synergy_acc``, else ``test_acc``), in accuracy (0.02 = 2 points), with its paired
    bootstrap 95% CI: the method beat the baseline only when ``lo`` > 0."""

    metric: str
    delta: float
    lo: float
    hi: float


class JobPublic(BaseModel):
    id: str
    name: str
    status: JobStatus
    progress: float
    trials_total: int
    trials_done: int
    dataset_id: str | None
    spec: dict[str, Any]
    failure_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    best: dict[str, BestTrial] = {}
    # The report's headline delta per method compared with the baseline; empty before the report.
    headline: dict[str, HeadlineDelta] = {}


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


def best_by_method(job: Any, trials: list[Any]) -> dict[str, BestTrial]:
    """Per method, the trial the job is reported at: the report's choice (``best_trials``) once
    the job has a report; before, the same rule over the succeeded trials so far
    (``synib_spec.selection``: the sweep point with the highest mean val_acc over seeds, then
    its trial with the highest val_acc)."""
    succeeded = {
        t.id: t
        for t in trials
        if t.status == TrialStatus.SUCCEEDED and isinstance(t.metrics.get("val_acc"), int | float)
    }
    chosen: dict[str, Any] = {}
    if job.best_trials is not None:  # written with the report (the report itself is not loaded)
        for method, trial_id in job.best_trials.items():
            trial = succeeded.get(trial_id)
            if trial is not None:
                chosen[method] = trial
    else:
        chosen = _best_so_far(job.spec or {}, list(succeeded.values()))
    return {
        method: BestTrial(
            trial_id=t.id,
            config=t.config,
            val_acc=t.metrics.get("val_acc"),
            test_acc=t.metrics.get("test_acc"),
            synergy_acc=t.metrics.get("synergy_acc"),
        )
        for method, t in chosen.items()
    }


def _best_so_far(spec: Mapping[str, Any], trials: list[Any]) -> dict[str, Any]:
    swept = list((spec.get("sweep") or {}).keys())
    points: dict[str, dict[str, list[Any]]] = {}
    for trial in sorted(trials, key=lambda t: t.trial_key):
        knobs = {k: trial.config.get(k) for k in swept if method_reads(trial.method, k)}
        points.setdefault(trial.method, {}).setdefault(sweep_label(knobs), []).append(trial)
    best = {}
    for method, by_label in points.items():
        scores = {label: [t.metrics["val_acc"] for t in ts] for label, ts in by_label.items()}
        label = best_point(scores)
        if label is not None:
            best[method] = max(by_label[label], key=lambda t: t.metrics["val_acc"])
    return best


class JobCreated(JobPublic):
    """The answer to a submission: the job, and the combinations of its knobs that run but
    measurably hurt (one line each, naming the knob; empty when none)."""

    warnings: list[str] = Field(default_factory=list)


def build_job_public(
    job: Any, succeeded_trials: list[Any], headline: Mapping[str, Any] | None = None
) -> JobPublic:
    """JobPublic from a Job row, its succeeded trials (for ``best``) and its report's
    ``headline`` (``crud.list_job_headlines``; read from the report when not given and the
    row has its report loaded)."""
    if headline is None and "report" not in inspect(job).unloaded:
        headline = (job.report or {}).get("headline")
    return JobPublic(
        id=job.id,
        name=job.name,
        status=job.status,
        progress=job.progress,
        trials_total=job.trials_total,
        trials_done=job.trials_done,
        dataset_id=job.dataset_id,
        spec=job.spec,
        failure_reason=job.failure_reason,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
        best=best_by_method(job, succeeded_trials),
        headline=headline or {},
    )
