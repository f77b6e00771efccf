"""A job spec, parsed once into a typed ``JobSpec``, and its trial plan.

The API calls ``parse_job_spec`` on a submitted spec (a 422 names the field of a ``SpecError``)
and stores ``JobSpec.to_json()``; the worker calls the same function on the stored JSON and
plans the trials with ``plan_trials`` (``count_trials`` is the API's count of the same plan).

A job trains, for every method, every point of the sweep that method reads (a method that does
not read a swept knob gets one point) for every seed. Grid and choice axes are crossed; the
uniform / loguniform axes of a method are drawn ``num_samples`` times, once per draw for all
seeds, by the worker (with Ray Tune's samplers): the plan here carries them as ``RandomAxis``.

Example:
    >>> spec = parse_job_spec({"dataset_id": "d1", "methods": ["vanilla", "synib"],
    ...                        "sweep": {"lambda": {"type": "grid", "values": [0.1, 1, 10]}}})
    >>> [(p.method, p.grid) for p in plan_methods(spec)]
    [('vanilla', [{}]), ('synib', [{'lambda': 0.1}, {'lambda': 1.0}, {'lambda': 10.0}])]
    >>> count_trials(spec)
    4
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from synib_spec.backbones import BackboneSpec, check_spec_backbones, parse_backbones
from synib_spec.errors import SpecError, SpecErrors
from synib_spec.knobs import (
    INT_MAX,
    KNOBS,
    METHODS,
    KnobError,
    check_rules,
    method_reads,
    parse_knob,
    parse_knobs,
    rule_warnings,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_SWEEP",
    "MAX_TRIALS",
    "NO_LIMITS",
    "JobSpec",
    "MethodPlan",
    "RandomAxis",
    "Resources",
    "Scheduler",
    "SpecLimits",
    "SweepAxis",
    "count_trials",
    "format_value",
    "parse_job_spec",
    "plan_methods",
    "spec_warnings",
    "sweep_label",
    "trial_key",
]

MAX_TRIALS = 5000
MAX_SEEDS = 100
MAX_NUM_SAMPLES = 1000


@dataclass(frozen=True)
class SpecLimits:
    """A service's policy on submitted specs (the API builds it from its settings, whose names
    the 422s quote). The default is no policy: only the structural bounds (``MAX_TRIALS``,
    ``INT_MAX`` epochs, resources above 0), what a stored spec is read back with."""

    max_trials: int = MAX_TRIALS
    max_epochs: int = INT_MAX
    min_cpus_per_trial: float = 0.0
    min_gpus_per_trial: float = 0.0  # a GPU share: 0 (none) or at least this


NO_LIMITS = SpecLimits()
DEFAULT_LIMITS = SpecLimits(
    max_trials=200, max_epochs=1000, min_cpus_per_trial=0.1, min_gpus_per_trial=0.05
)
"""The service's default policy (``infra.settings`` takes its defaults from here): a job is at
most 200 trials of at most 1000 epochs; a trial asks for at least 0.1 CPU, and for no GPU or at
least 0.05 of one (below that Ray packs more trials on a device than it can hold)."""

SweepType = Literal["grid", "choice", "uniform", "loguniform"]
GRID_TYPES = ("grid", "choice")
RANDOM_TYPES = ("uniform", "loguniform")

DEFAULT_SWEEP: dict[str, dict[str, Any]] = {
    "lambda": {"type": "grid", "values": [0.0, 0.1, 0.3, 1.0, 3.0, 10.0]},
}
"""The sweep of a spec that names none (``"sweep"`` absent; ``{}`` means no sweep): the penalty
weight over the range that mattered on the reference tasks, with 0 (SynIB without its penalty
is vanilla, bit for bit) so that validation can say the penalty does not help (docs/METHOD.md,
"The default sweep")."""


@dataclass(frozen=True)
class SweepAxis:
    """One swept knob: ``values`` for grid/choice, ``low`` < ``high`` for uniform/loguniform."""

    knob: str
    type: SweepType
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict[str, Any]:
        if self.type in GRID_TYPES:
            return {"type": self.type, "values": list(self.values)}
        return {"type": self.type, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class MethodEntry:
    """A method and the knobs set for it alone (over the job's ``config``)."""

    name: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scheduler:
    """``fifo`` runs every trial to its end; ``asha`` stops the weak ones early on val_acc."""

    type: Literal["fifo", "asha"] = "fifo"
    grace_period: int = 1
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class Resources:
    """What one trial asks of the worker's Ray (fractions allowed)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    memory_mb_per_trial: int | None = None

    @property
    def threads(self) -> int:
        """torch / OMP threads of a trial: its whole CPUs, at least one."""
        return max(1, int(self.cpus_per_trial))


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec (see ``parse_job_spec``). ``config`` holds typed knob values with
    ``epochs`` applied; ``sweep`` is in the order given."""

    dataset_id: str
    methods: tuple[MethodEntry, ...]
    config: Mapping[str, Any]
    sweep: tuple[SweepAxis, ...]
    num_samples: int
    seeds: tuple[int, ...]
    epochs: int | None
    scheduler: Scheduler
    resources: Resources
    max_concurrent_trials: int | None
    baseline: str
    name: str | None = None
    backbones: Mapping[str, BackboneSpec] = field(default_factory=dict)

    def method_names(self) -> list[str]:
        return [m.name for m in self.methods]

    def method_config(self, method: str) -> dict[str, Any]:
        """The knobs fixed for ``method``: the job's config overlaid with the method's own."""
        own = next((m.config for m in self.methods if m.name == method), {})
        return {**self.config, **own}

    def knob_values(self, method: str, knob: str) -> list[Any]:
        """The values ``knob`` takes in ``method``'s trials (the bounds of a random axis)."""
        axis = next((a for a in self.sweep if a.knob == knob), None)
        if axis is not None and method_reads(method, knob):
            return list(axis.values) if axis.values else [axis.low, axis.high]
        return [self.method_config(method).get(knob, KNOBS[knob].default)]

    def to_json(self) -> dict[str, Any]:
        """The normalised spec stored with the job (``parse_job_spec`` reads it back as is)."""
        return {
            "name": self.name,
            "dataset_id": self.dataset_id,
            "methods": [
                m.name if not m.config else {"name": m.name, "config": dict(m.config)}
                for m in self.methods
            ],
            "config": {k: v for k, v in self.config.items() if k != "epochs" or not self.epochs},
            "sweep": {a.knob: a.to_json() for a in self.sweep},
            "num_samples": self.num_samples,
            "seeds": list(self.seeds),
            "epochs": self.epochs,
            "scheduler": {
                "type": self.scheduler.type,
                "grace_period": self.scheduler.grace_period,
                "reduction_factor": self.scheduler.reduction_factor,
            },
            "resources": {
                "cpus_per_trial": self.resources.cpus_per_trial,
                "gpus_per_trial": self.resources.gpus_per_trial,
                "memory_mb_per_trial": self.resources.memory_mb_per_trial,
            },
            "max_concurrent_trials": self.max_concurrent_trials,
            "baseline": self.baseline,
            "backbones": {m: b.to_json() for m, b in self.backbones.items()},
        }


# --- parsing ----------------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(where, f"expected an object, got {type(value).__name__}")
    return value


def _unknown_keys(raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise SpecError(f"{prefix}{unknown[0]}", f"unknown field; allowed: {', '.join(allowed)}")


def _int(value: Any, where: str, low: int, high: int = INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, f"expected an integer, got {value!r}")
    if not low <= value <= high:
        raise SpecError(where, f"must be in {low}..{high}, got {value}")
    return value


def _number(value: Any, where: str, *, gt: float | None = None, ge: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(where, f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise SpecError(where, f"expected a finite number, got {value!r}")
    if gt is not None and not number > gt:
        raise SpecError(where, f"must be > {gt:g}, got {value!r}")
    if ge is not None and not number >= ge:
        raise SpecError(where, f"must be >= {ge:g}, got {value!r}")
    return number


def _text(value: Any, where: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(where, f"expected a non-empty string, got {value!r}")
    if len(value) > max_length or "\x00" in value:
        raise SpecError(where, f"must be at most {max_length} characters, without NUL")
    return value


def _knobs(raw: Any, where: str) -> dict[str, Any]:
    try:
        return parse_knobs(_mapping(raw, where), strict=True)
    except KnobError as exc:
        raise exc.at(where) from None


def _methods(raw: Any) -> tuple[MethodEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("methods", "must list at least one method")
    entries: list[MethodEntry] = []
    for i, item in enumerate(raw):
        where = f"methods[{i}]"
        name: Any
        if isinstance(item, str):
            name, config = item, {}
        elif isinstance(item, Mapping):
            _unknown_keys(item, ("name", "config"), where)
            name, config = item.get("name"), _knobs(item.get("config") or {}, f"{where}.config")
            where = f"{where}.name"
        else:
            raise SpecError(where, f"expected a method name or {{name, config}}, got {item!r}")
        if name not in METHODS:
            raise SpecError(where, f"unknown method {name!r}; known: {', '.join(METHODS)}")
        entries.append(MethodEntry(str(name), config))
    names = [e.name for e in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SpecError("methods", f"each method may appear once, repeated: {repeated}")
    return tuple(entries)


def _axis(knob: str, raw: Any) -> SweepAxis:
    where = f"sweep.{knob}"
    if knob not in KNOBS:
        raise SpecError(where, f"unknown knob {knob!r}")
    entry = _mapping(raw, where)
    _unknown_keys(entry, ("type", "values", "low", "high"), where)
    kind = entry.get("type")
    if kind in GRID_TYPES:
        values = entry.get("values")
        if not isinstance(values, list) or not values or "low" in entry or "high" in entry:
            raise SpecError(f"{where}.values", f"{kind} needs a non-empty 'values' list only")
        typed = []
        for i, value in enumerate(values):
            try:
                typed.append(parse_knob(knob, value, strict=True))
            except KnobError as exc:
                raise SpecError(f"{where}.values[{i}]", exc.reason) from None
        texts = [format_value(v) for v in typed]
        if len(set(texts)) != len(texts):
            raise SpecError(f"{where}.values", f"values must be distinct, got {values}")
        return SweepAxis(knob, kind, values=tuple(typed))
    if kind in RANDOM_TYPES:
        if KNOBS[knob].type != "float":
            raise SpecError(f"{where}.type", f"{kind} needs a float knob; use grid for {knob!r}")
        if "values" in entry or "low" not in entry or "high" not in entry:
            raise SpecError(where, f"{kind} needs 'low' and 'high' (and no 'values')")
        bounds = []
        for end in ("low", "high"):
            try:
                bounds.append(parse_knob(knob, entry[end], strict=True))
            except KnobError as exc:
                raise SpecError(f"{where}.{end}", exc.reason) from None
        low, high = bounds
        if not low < high:
            raise SpecError(f"{where}.low", f"low ({low}) must be below high ({high})")
        if kind == "loguniform" and low <= 0:
            raise SpecError(f"{where}.low", "loguniform needs low > 0")
        return SweepAxis(knob, kind, low=low, high=high)
    raise SpecError(
        f"{where}.type", f"expected one of grid, choice, uniform, loguniform, got {kind!r}"
    )


def _seeds(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SEEDS:
        raise SpecError("seeds", f"expected a list of 1..{MAX_SEEDS} seeds, got {raw!r}")
    seeds = tuple(_int(s, f"seeds[{i}]", 0) for i, s in enumerate(raw))
    if len(set(seeds)) != len(seeds):
        raise SpecError("seeds", f"seeds must be unique, got {list(seeds)}")
    return seeds


def _scheduler(raw: Any) -> Scheduler:
    entry = _mapping(raw, "scheduler")
    _unknown_keys(entry, ("type", "grace_period", "reduction_factor"), "scheduler")
    kind = entry.get("type", "fifo")
    if kind not in ("fifo", "asha"):
        raise SpecError("scheduler.type", f"expected 'fifo' or 'asha', got {kind!r}")
    grace = _int(entry.get("grace_period", 1), "scheduler.grace_period", 1)
    factor = _number(entry.get("reduction_factor", 2.0), "scheduler.reduction_factor", gt=1)
    return Scheduler(kind, grace, factor)


def _resources(raw: Any) -> Resources:
    entry = _mapping(raw, "resources")
    allowed = ("cpus_per_trial", "gpus_per_trial", "memory_mb_per_trial")
    _unknown_keys(entry, allowed, "resources")
    cpus = _number(entry.get("cpus_per_trial", 1.0), "resources.cpus_per_trial", gt=0)
    gpus = _number(entry.get("gpus_per_trial", 0.0), "resources.gpus_per_trial", ge=0)
    memory = entry.get("memory_mb_per_trial")
    if memory is not None:
        memory = _int(memory, "resources.memory_mb_per_trial", 64, 4_194_304)
    return Resources(cpus, gpus, memory)


SPEC_FIELDS = (
    "name", "dataset_id", "methods", "config", "sweep", "num_samples", "seeds", "epochs",
    "scheduler", "resources", "max_concurrent_trials", "baseline", "backbones",
)  # fmt: skip


def parse_job_spec(raw: Mapping[str, Any], *, limits: SpecLimits = NO_LIMITS) -> JobSpec:
    """Validate a job spec (JSON as submitted, or as stored) into a ``JobSpec``.

    Raises ``SpecError`` naming the bad field (``SpecErrors`` holding each when several fields
    are bad): unknown fields, methods, knobs and their values (strictly typed: ``"epochs": "5"``
    is refused), sweep axes, seeds; then the rules between knobs for every trial, and what
    ``limits`` refuses (epochs, resources, more than ``limits.max_trials`` trials).
    """
    raw = _mapping(raw, "spec")
    _unknown_keys(raw, SPEC_FIELDS, "")
    errors: list[SpecError] = []

    def field(parse: Callable[[], Any], fallback: Any = None) -> Any:
        """``parse()``, or ``fallback`` with its error kept: every bad field is reported."""
        try:
            return parse()
        except SpecError as exc:
            errors.append(exc)
            return fallback

    name, epochs, limit = raw.get("name"), raw.get("epochs"), raw.get("max_concurrent_trials")
    baseline = raw.get("baseline", "vanilla")
    if "dataset_id" not in raw:
        errors.append(SpecError("dataset_id", "missing: name the dataset the job trains on"))
    if baseline not in METHODS:
        errors.append(
            SpecError("baseline", f"unknown method {baseline!r}; known: {', '.join(METHODS)}")
        )
    methods = field(lambda: _methods(raw.get("methods")), ())
    config = field(lambda: _knobs(raw.get("config") or {}, "config"), {})
    if epochs is not None:
        config["epochs"] = field(lambda: _int(epochs, "epochs", 1), 1)
    sweep = field(lambda: _mapping(raw.get("sweep", DEFAULT_SWEEP) or {}, "sweep"), {})
    axes = [field(partial(_axis, str(knob), entry)) for knob, entry in sweep.items()]
    spec = JobSpec(
        name=None if name is None else field(lambda: _text(name, "name", 200)),
        dataset_id=field(lambda: _text(raw.get("dataset_id"), "dataset_id", 36), ""),
        methods=methods,
        config=config,
        sweep=tuple(a for a in axes if a is not None),
        num_samples=field(
            lambda: _int(raw.get("num_samples", 4), "num_samples", 1, MAX_NUM_SAMPLES), 1
        ),
        seeds=field(lambda: _seeds(raw.get("seeds", [0])), (0,)),
        epochs=None if epochs is None else config["epochs"],
        scheduler=field(lambda: _scheduler(raw.get("scheduler") or {}), Scheduler()),
        resources=field(lambda: _resources(raw.get("resources") or {}), Resources()),
        max_concurrent_trials=None
        if limit is None
        else field(lambda: _int(limit, "max_concurrent_trials", 1)),
        baseline=str(baseline),
        backbones=field(lambda: parse_backbones(raw.get("backbones")), {}),
    )
    if errors:
        raise errors[0] if len(errors) == 1 else SpecErrors(errors)
    _check_trial_rules(spec)
    check_spec_backbones(spec)
    _check_limits(spec, limits)
    total = count_trials(spec)
    if total > limits.max_trials:
        raise SpecError(
            "sweep",
            f"{total} trials (methods x sweep points x samples x seeds), at most "
            f"{limits.max_trials} allowed (limit max_trials_per_job)",
        )
    return spec


def _epoch_fields(spec: JobSpec) -> list[tuple[str, int]]:
    """(field, epochs) of every place the spec sets the ``epochs`` knob."""
    found = []
    if spec.epochs is not None:
        found.append(("epochs", spec.epochs))
    elif "epochs" in spec.config:
        found.append(("config.epochs", spec.config["epochs"]))
    for i, entry in enumerate(spec.methods):
        if "epochs" in entry.config:
            found.append((f"methods[{i}].config.epochs", entry.config["epochs"]))
    for axis in spec.sweep:
        if axis.knob == "epochs":
            found.extend((f"sweep.epochs.values[{i}]", v) for i, v in enumerate(axis.values))
    return found


def _check_limits(spec: JobSpec, limits: SpecLimits) -> None:
    """The service's policy (``SpecLimits``): a ``SpecError`` naming the field, the value and
    the limit."""
    for where, epochs in _epoch_fields(spec):
        if epochs > limits.max_epochs:
            raise SpecError(
                where, f"{epochs} epochs, at most {limits.max_epochs} allowed (limit max_epochs)"
            )
    cpus, gpus = spec.resources.cpus_per_trial, spec.resources.gpus_per_trial
    if cpus < limits.min_cpus_per_trial:
        raise SpecError(
            "resources.cpus_per_trial",
            f"{cpus:g} CPUs, at least {limits.min_cpus_per_trial:g} per trial "
            "(limit min_cpus_per_trial)",
        )
    if 0 < gpus < limits.min_gpus_per_trial:
        raise SpecError(
            "resources.gpus_per_trial",
            f"{gpus:g} GPUs: 0 (no GPU) or at least {limits.min_gpus_per_trial:g} per trial "
            "(limit min_gpus_per_trial)",
        )


def _check_trial_rules(spec: JobSpec) -> None:
    """Every grid point of every method obeys the rules between knobs (the bounds of a random
    axis are both checked)."""
    for plan in plan_methods(spec):
        fixed = spec.method_config(plan.method)
        randoms = [{a.knob: v} for a in plan.random for v in (a.low, a.high)] or [{}]
        for point in plan.grid:
            for extra in randoms:
                error = check_rules(plan.method, {**fixed, **point, **extra})
                if error is None:
                    continue
                where = ", ".join(f"{k}={format_value(v)}" for k, v in {**point, **extra}.items())
                at = f"method {plan.method!r}" + (f" at sweep point {where}" if where else "")
                raise SpecError(f"config.{error.field}", f"{error.reason} ({at})")


def spec_warnings(spec: JobSpec) -> list[str]:
    """The warning rules the job's trials break, one line each ("config.<knob>: why (method
    ...)"): combinations that run but measurably hurt (docs/METHOD.md section 2). Deduplicated,
    in plan order."""
    lines: list[str] = []
    for plan in plan_methods(spec):
        fixed = spec.method_config(plan.method)
        randoms = [{a.knob: v} for a in plan.random for v in (a.low, a.high)] or [{}]
        for point in plan.grid:
            for extra in randoms:
                for warning in rule_warnings(plan.method, {**fixed, **point, **extra}):
                    line = f"config.{warning.field}: {warning.reason} (method {plan.method!r})"
                    if line not in lines:
                        lines.append(line)
    return lines


# --- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomAxis:
    """A uniform / loguniform axis a method reads: drawn ``num_samples`` times by the worker."""

    knob: str
    type: Literal["uniform", "loguniform"]
    low: float
    high: float


@dataclass(frozen=True)
class MethodPlan:
    """One method's share of a job: its grid points (``[{}]`` without grid axes), the random
    axes it reads with how many draws, and the seeds; trials = grid x draws x seeds."""

    method: str
    grid: list[dict[str, Any]]
    random: tuple[RandomAxis, ...]
    draws: int
    seeds: tuple[int, ...]

    @property
    def trials(self) -> int:
        return len(self.grid) * self.draws * len(self.seeds)


def plan_methods(spec: JobSpec) -> list[MethodPlan]:
    """Per method (in the spec's order), the sweep it reads."""
    plans = []
    for method in spec.method_names():
        axes = [a for a in spec.sweep if method_reads(method, a.knob)]
        grid_axes = [a for a in axes if a.type in GRID_TYPES]
        random = tuple(
            RandomAxis(a.knob, a.type, float(a.low), float(a.high))  # type: ignore[arg-type]
            for a in axes
            if a.type in RANDOM_TYPES
        )
        grid = [
            dict(zip((a.knob for a in grid_axes), combo, strict=True))
            for combo in itertools.product(*(a.values for a in grid_axes))
        ]
        draws = spec.num_samples if random else 1
        plans.append(MethodPlan(method, grid, random, draws, spec.seeds))
    return plans


def count_trials(spec: JobSpec) -> int:
    """How many trials the job runs."""
    return sum(p.trials for p in plan_methods(spec))


def format_value(value: Any) -> str:
    """Canonical text of a knob value in a trial key (floats with ``%g``, bools lower case)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def sweep_label(sweep_values: Mapping[str, Any]) -> str:
    """``{"lambda": 1.0, "lr": 0.001}`` -> ``"lambda=1|lr=0.001"`` (sorted by knob)."""
    return "|".join(f"{k}={format_value(sweep_values[k])}" for k in sorted(sweep_values))


def trial_key(method: str, sweep_values: Mapping[str, Any], seed: int) -> str:
    """Unique-per-job trial key, e.g. ``synib|lambda=1|seed=0``."""
    label = sweep_label(sweep_values)
    return f"{method}|{label}|seed={seed}" if label else f"{method}|seed={seed}"
