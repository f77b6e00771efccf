"""Job schemas: JobCreate (fully validated spec), JobPublic, JobsPublic."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.knobs import (
    CROSS_FIELD_KNOBS,
    INT_KNOB_MAX,
    KNOBS,
    METHODS,
    KnobValueError,
    check_cross_fields,
    count_trials,
    method_reads,
    validate_knob,
    validate_knobs,
)
from api.schemas.common import MAX_SQL_INT, CleanText

MAX_TRIALS = 5000


def _canonical(value: Any) -> str:
    """Text of a value as it appears in a trial key (floats %g, bools lower case)."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


class MethodEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    config: dict[str, Any] = {}


class SweepSpec(BaseModel):
    """grid|choice: ``values``; uniform|loguniform (float knobs): ``low`` < ``high``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["grid", "choice", "uniform", "loguniform"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None


class SchedulerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(default=1, ge=1, le=MAX_SQL_INT)
    reduction_factor: float = Field(default=2.0, gt=1)


class ResourcesSpec(BaseModel):
    # No infinities or NaN: a GPU count of Infinity is no resource request, and PostgreSQL's
    # json type cannot even store the spec holding it.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)
    # Memory (MiB) each trial may allocate beyond its process's runtime footprint (the worker's
    # trial_memory_mb caps it too); a trial above it fails with "out of memory: ...".
    memory_mb_per_trial: int | None = Field(default=None, ge=64, le=4_194_304)


def _check_method_name(name: str, field: str) -> None:
    if name not in METHODS:
        raise ValueError(f"{field}: unknown method {name!r}; known: {', '.join(METHODS)}")


def _check_sweep_entry(knob: str, entry: SweepSpec) -> SweepSpec:
    field = f"sweep.{knob}"
    if knob not in KNOBS:
        raise ValueError(f"{field}: unknown knob {knob!r}")
    if entry.type in ("grid", "choice"):
        if not entry.values or entry.low is not None or entry.high is not None:
            raise ValueError(f"{field}.values: {entry.type} needs a non-empty 'values' list only")
        typed = [validate_knob(knob, v, f"{field}.values[{i}]") for i, v in enumerate(entry.values)]
        texts = [_canonical(v) for v in typed]
        if len(set(texts)) != len(texts):
            raise ValueError(f"{field}.values: values must be distinct, got {entry.values}")
        return SweepSpec(type=entry.type, values=typed)
    if KNOBS[knob].type != "float":
        raise ValueError(f"{field}.type: {entry.type} needs a float knob; use grid for {knob!r}")
    if entry.values is not None or entry.low is None or entry.high is None:
        raise ValueError(f"{field}: {entry.type} needs 'low' and 'high' (and no 'values')")
    low = validate_knob(knob, entry.low, f"{field}.low")
    high = validate_knob(knob, entry.high, f"{field}.high")
    if not low < high:
        raise ValueError(f"{field}.low: low ({low}) must be below high ({high})")
    if entry.type == "loguniform" and low <= 0:
        raise ValueError(f"{field}.low: loguniform needs low > 0")
    return SweepSpec(type=entry.type, low=low, high=high)


class JobCreate(BaseModel):
    """A job: methods x sweep x seeds on one dataset (see docs/INTERNALS.md "REST API")."""

    model_config = ConfigDict(extra="forbid")

    name: CleanText | None = Field(default=None, max_length=200)
    dataset_id: CleanText = Field(min_length=1, max_length=36)
    methods: list[str | MethodEntry] = Field(min_length=1)
    config: dict[str, Any] = {}
    sweep: dict[str, SweepSpec] = {}
    num_samples: int = Field(default=4, ge=1, le=1000)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=100)
    epochs: int | None = Field(default=None, ge=1, le=INT_KNOB_MAX)
    scheduler: SchedulerSpec = SchedulerSpec()
    resources: ResourcesSpec = ResourcesSpec()
    max_concurrent_trials: int | None = Field(default=None, ge=1, le=MAX_SQL_INT)
    baseline: str = "vanilla"

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: list[str | MethodEntry]) -> list[str | MethodEntry]:
        names: list[str] = []
        out: list[str | MethodEntry] = []
        for i, item in enumerate(methods):
            if isinstance(item, str):
                _check_method_name(item, f"methods[{i}]")
                names.append(item)
                out.append(item)
                continue
            _check_method_name(item.name, f"methods[{i}].name")
            config = validate_knobs(item.config, f"methods[{i}].config")
            names.append(item.name)
            out.append(MethodEntry(name=item.name, config=config))
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"methods: each method may appear once, repeated: {repeated}")
        return out

    @field_validator("config")
    @classmethod
    def _config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return validate_knobs(config, "config")

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, sweep: dict[str, SweepSpec]) -> dict[str, SweepSpec]:
        return {knob: _check_sweep_entry(knob, entry) for knob, entry in sweep.items()}

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: seeds must be unique, got {seeds}")
        if any(s < 0 for s in seeds):
            raise ValueError(f"seeds: seeds must be >= 0, got {seeds}")
        if any(s > MAX_SQL_INT for s in seeds):
            raise ValueError(f"seeds: seeds must be <= {MAX_SQL_INT}, got {seeds}")
        return seeds

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, baseline: str) -> str:
        _check_method_name(baseline, "baseline")
        return baseline

    @model_validator(mode="after")
    def _size(self) -> JobCreate:
        if self.trials_total() > MAX_TRIALS:
            raise ValueError(f"sweep: {self.trials_total()} trials, at most {MAX_TRIALS} allowed")
        return self

    def knob_problem(self) -> tuple[str, str] | None:
        """(field, reason) when a trial's knobs break one of the library's rules between knobs
        (``api.knobs.check_cross_fields``): the worker would fail such a job at its start."""
        for entry in self.methods:
            method = entry if isinstance(entry, str) else entry.name
            fixed = {**self.config, **({} if isinstance(entry, str) else entry.config)}
            grids = {
                knob: sweep.values or []
                for knob, sweep in self.sweep.items()
                if knob in CROSS_FIELD_KNOBS
                and sweep.type in ("grid", "choice")
                and method_reads(method, knob)
            }
            for combo in itertools.product(*grids.values()):
                point = dict(zip(grids, combo, strict=True))
                try:
                    check_cross_fields({**fixed, **point})
                except KnobValueError as exc:
                    where = ", ".join(f"{k}={_canonical(v)}" for k, v in point.items())
                    at = f"method {method!r}" + (f" at sweep point {where}" if where else "")
                    return f"config.{exc.field}", f"{exc.reason} ({at})"
        return None

    def knob_values(self, method: str, knob: str) -> list[Any]:
        """The values a grid/choice or fixed ``knob`` takes in the trials of ``method`` (its
        default when nothing sets it; the bounds of a uniform/loguniform sweep)."""
        sweep = self.sweep.get(knob)
        if sweep is not None and method_reads(method, knob):
            return list(sweep.values or []) or [sweep.low, sweep.high]
        configs = [m.config for m in self.methods if not isinstance(m, str) and m.name == method]
        fixed = {**self.config, **(configs[0] if configs else {})}
        return [fixed.get(knob, KNOBS[knob].default)]

    def dataset_problem(self, summary: Mapping[str, Any] | None) -> tuple[str, str] | None:
        """(field, reason) when a trial needs what the dataset lacks: oracle coordinates for
        ``mask: oracle``, a modality named in ``modality_weights``. None when it fits, or
        while the dataset is not validated yet (the worker checks it then)."""
        if not summary:
            return None
        modalities = [str(m.get("name")) for m in summary.get("modalities") or []]
        for method in self.method_names():
            oracle = method_reads(method, "mask") and "oracle" in self.knob_values(method, "mask")
            if oracle and not summary.get("has_oracle"):
                reason = (
                    "'oracle' needs the dataset's oracle coordinates (oracle_<modality> arrays); "
                    f"this dataset has none (method {method!r})"
                )
                return "config.mask", reason
            if not method_reads(method, "modality_weights"):
                continue
            for text in self.knob_values(method, "modality_weights"):
                names = [item.partition("=")[0].strip() for item in str(text).split(",")]
                unknown = sorted({n for n in names if n} - set(modalities))
                if unknown:
                    reason = f"unknown modalities {unknown}; the dataset has {modalities}"
                    return "config.modality_weights", reason
        return None

    def method_names(self) -> list[str]:
        return [m if isinstance(m, str) else m.name for m in self.methods]

    def trials_total(self) -> int:
        """Trials the worker will run (see ``api.knobs.count_trials``)."""
        sweep = {k: v.model_dump(exclude_none=True) for k, v in self.sweep.items()}
        return count_trials(self.method_names(), sweep, self.num_samples, len(self.seeds))

    def spec_json(self) -> dict[str, Any]:
        """The normalised spec stored in ``jobs.spec`` (typed knob values, no null sweep keys)."""
        spec = self.model_dump(mode="json")
        spec["sweep"] = {k: v.model_dump(exclude_none=True) for k, v in self.sweep.items()}
        return spec


class BestTrial(BaseModel):
    trial_id: str
    config: dict[str, Any]
    val_acc: float | None
    test_acc: float | None
    synergy_acc: float | None


class JobPublic(BaseModel):
    id: str
    name: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelling", "cancelled"]
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


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


def best_by_method(trials: list[Any]) -> dict[str, BestTrial]:
    """Per method, the succeeded trial with the highest ``val_acc`` (ties: lowest trial_key)."""
    best: dict[str, Any] = {}
    for trial in sorted(trials, key=lambda t: t.trial_key):
        if trial.status != "succeeded" or not isinstance(trial.metrics.get("val_acc"), int | float):
            continue
        current = best.get(trial.method)
        if current is None or trial.metrics["val_acc"] > current.metrics["val_acc"]:
            best[trial.method] = trial
    return {
        method: BestTrial(
            trial_id=t.id,
            config=t.config,
            val_acc=t.metrics.get("val_acc"),
            test_acc=t.metrics.get("test_acc"),
            synergy_acc=t.metrics.get("synergy_acc"),
        )
        for method, t in best.items()
    }


def build_job_public(job: Any, succeeded_trials: list[Any]) -> JobPublic:
    """JobPublic from a Job row and its succeeded trials (for ``best``)."""
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
        best=best_by_method(succeeded_trials),
    )
