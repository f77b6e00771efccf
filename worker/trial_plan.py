"""Expand a job spec into its trials: methods x sweep values x seeds.

A sweep over a knob that a method does not read gives that method one trial per seed (not one
per sweep value). Random sweeps (uniform / loguniform) are drawn here, with a seed derived from
the knob's name and bounds, and rounded to 4 significant digits, so that the same spec always
gives the same trials and trial keys (``synib|lambda=1|seed=0``) and a job can be resumed.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KnobReader = Callable[[str, str], bool]
"""``reads(method, knob) -> bool``: whether ``method`` reads ``knob``."""

GRID_TYPES = ("grid", "choice")
RANDOM_TYPES = ("uniform", "loguniform")


class PlanError(ValueError):
    """A job spec that cannot be expanded into trials (a user fault): names the field."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class TrialSpec:
    """One trial: ``config`` holds every knob set explicitly (spec config, method config, sweep)."""

    key: str
    method: str
    seed: int
    config: dict[str, Any]
    sweep_values: dict[str, Any] = field(default_factory=dict)


def sweep_label(sweep_values: Mapping[str, Any]) -> str:
    """``{"lambda": 1.0, "lr": 0.001}`` -> ``"lambda=1|lr=0.001"`` (sorted by knob)."""
    return "|".join(f"{k}={format_value(sweep_values[k])}" for k in sorted(sweep_values))


def format_value(value: Any) -> str:
    """Canonical text of a knob value in a trial key (floats with ``%g``, bools lower case)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def trial_key(method: str, sweep_values: Mapping[str, Any], seed: int) -> str:
    """Stable, unique-per-job trial key, e.g. ``synib|lambda=1|seed=0``."""
    label = sweep_label(sweep_values)
    return f"{method}|{label}|seed={seed}" if label else f"{method}|seed={seed}"


def _draw_seed(knob: str, low: float, high: float, kind: str) -> int:
    digest = hashlib.sha256(f"{knob}|{kind}|{low!r}|{high!r}".encode()).hexdigest()
    return int(digest[:16], 16)


def draw_random_values(knob: str, sweep: Mapping[str, Any], num_samples: int) -> list[float]:
    """``num_samples`` seeded draws in [low, high] (log-uniform for ``loguniform``), 4 sig. digits."""
    kind = sweep["type"]
    try:
        low, high = float(sweep["low"]), float(sweep["high"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"sweep.{knob}", f"{kind} needs numeric 'low' and 'high'") from exc
    if not low < high:
        raise PlanError(f"sweep.{knob}", f"low ({low}) must be below high ({high})")
    if kind == "loguniform" and low <= 0:
        raise PlanError(f"sweep.{knob}", "loguniform needs low > 0")
    rng = np.random.default_rng(_draw_seed(knob, low, high, kind))
    u = rng.random(num_samples)  # (num_samples,) in [0, 1)
    if kind == "loguniform":
        raw = np.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        raw = low + u * (high - low)
    # Rounding may step past a bound (0.99999 -> 1.0, outside dropout's range): clip it back.
    return [min(max(float(f"{v:.4g}"), low), high) for v in raw]


def sweep_points(sweep: Mapping[str, Mapping[str, Any]], num_samples: int) -> list[dict[str, Any]]:
    """All sweep points: grid knobs crossed with ``num_samples`` joint random draws.

    Returns a list of ``{knob: value}`` dicts (``[{}]`` for an empty sweep).
    """
    grid: dict[str, list[Any]] = {}
    random_draws: dict[str, list[float]] = {}
    for knob, entry in sweep.items():
        kind = entry.get("type") if isinstance(entry, Mapping) else None
        if kind in GRID_TYPES:
            values = list(entry.get("values") or [])
            if not values:
                raise PlanError(f"sweep.{knob}.values", "must list at least one value")
            grid[knob] = values
        elif kind in RANDOM_TYPES:
            random_draws[knob] = draw_random_values(knob, entry, num_samples)
        else:
            raise PlanError(f"sweep.{knob}.type", f"unknown sweep type {kind!r}")
    grid_points = [
        dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())
    ]
    if not random_draws:
        return grid_points
    random_points = [{k: random_draws[k][i] for k in random_draws} for i in range(num_samples)]
    return [{**g, **r} for g in grid_points for r in random_points]


def method_entries(methods: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Normalise ``methods`` (``"synib"`` or ``{"name": ..., "config": {...}}``) to (name, config)."""
    entries: list[tuple[str, dict[str, Any]]] = []
    for item in methods:
        if isinstance(item, str):
            entries.append((item, {}))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            entries.append((item["name"], dict(item.get("config") or {})))
        else:
            raise PlanError(
                "methods", f"each entry must be a name or {{name, config}}, got {item!r}"
            )
    names = [name for name, _ in entries]
    if not names:
        raise PlanError("methods", "must list at least one method")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PlanError("methods", f"each method may appear once, repeated: {duplicates}")
    return entries


def base_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The job-wide knobs: ``spec.config`` with ``spec.epochs`` applied."""
    config = dict(spec.get("config") or {})
    if spec.get("epochs") is not None:
        config["epochs"] = int(spec["epochs"])
    return config


def plan_trials(spec: Mapping[str, Any], reads: KnobReader | None = None) -> list[TrialSpec]:
    """Expand a job spec (the JobCreate JSON) into trials, in a stable order.

    ``reads(method, knob)`` tells whether a method reads a knob (default: from
    ``synib_core.config.METHOD_KNOBS``). Raises ``PlanError`` for a malformed spec.
    """
    entries = method_entries(spec.get("methods") or [])
    if reads is None:
        check_methods([name for name, _ in entries])
        reads = default_knob_reader()
    seeds = [int(s) for s in (spec.get("seeds") or [0])]
    if len(set(seeds)) != len(seeds):
        raise PlanError("seeds", f"repeated seeds in {seeds}")
    num_samples = int(spec.get("num_samples") or 4)
    if num_samples < 1:
        raise PlanError("num_samples", "must be >= 1")
    points = sweep_points(spec.get("sweep") or {}, num_samples)
    base = base_config(spec)
    trials: list[TrialSpec] = []
    for method, method_config in entries:
        seen: set[str] = set()
        for point in points:
            applied = {k: v for k, v in point.items() if reads(method, k)}
            for seed in seeds:
                key = trial_key(method, applied, seed)
                if key in seen:
                    continue
                seen.add(key)
                config = {**base, **method_config, **applied}
                trials.append(TrialSpec(key, method, seed, config, applied))
    return trials


def check_methods(methods: list[str]) -> None:
    """Raise ``PlanError`` for a method ``synib_core`` does not know."""
    from synib_core.config import METHODS

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise PlanError("methods", f"unknown method {unknown[0]!r}, known: {', '.join(METHODS)}")


def default_knob_reader() -> KnobReader:
    """``reads(method, knob)`` from ``synib_core.config.METHOD_KNOBS``.

    A knob is read by a method when it is shared (no method lists it as method-specific) or when
    the method lists it.
    """
    from synib_core.config import METHOD_KNOBS

    specific = {k for knobs in METHOD_KNOBS.values() for k in knobs}

    def reads(method: str, knob: str) -> bool:
        if method not in METHOD_KNOBS:
            raise PlanError("methods", f"unknown method {method!r}")
        return knob not in specific or knob in METHOD_KNOBS[method]

    return reads
