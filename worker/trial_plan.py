"""A job's trials: ``synib_spec.jobs.plan_methods`` (what the API counted) made concrete.

Grid points come from the spec; the uniform / loguniform axes of a method are drawn here with
Ray Tune's own samplers (``tune.uniform`` / ``tune.loguniform``), ``num_samples`` draws shared by
all seeds (a sweep point's seeds are then comparable in the report), seeded by the job id so a
resumed job draws the same values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from synib_spec.jobs import JobSpec, MethodPlan, plan_methods, trial_key


@dataclass(frozen=True)
class TrialSpec:
    """One trial: ``config`` holds every knob set explicitly (spec config, method config, sweep)."""

    key: str
    method: str
    seed: int
    config: dict[str, Any]
    sweep_values: dict[str, Any] = field(default_factory=dict)


def _random_points(plan: MethodPlan, job_id: str) -> list[dict[str, Any]]:
    """``plan.draws`` joint draws of the method's random axes (``[{}]`` without any)."""
    if not plan.random:
        return [{}]
    from ray import tune

    draws: dict[str, list[float]] = {}
    for axis in plan.random:
        domain = tune.loguniform if axis.type == "loguniform" else tune.uniform
        digest = hashlib.sha256(f"{job_id}|{plan.method}|{axis.knob}".encode()).hexdigest()
        values = domain(axis.low, axis.high).sample(
            size=plan.draws, random_state=int(digest[:8], 16)
        )
        # Rounded to 4 significant digits (readable trial keys), kept inside the bounds.
        draws[axis.knob] = [min(max(float(f"{v:.4g}"), axis.low), axis.high) for v in values]
    return [{k: v[i] for k, v in draws.items()} for i in range(plan.draws)]


def plan_trials(spec: JobSpec, job_id: str = "") -> list[TrialSpec]:
    """Every trial of the job, in a stable order: method, sweep point, seed."""
    trials: list[TrialSpec] = []
    for plan in plan_methods(spec):
        fixed = spec.method_config(plan.method)
        seen: set[str] = set()
        for point in plan.grid:
            for drawn in _random_points(plan, job_id):
                sweep_values = {**point, **drawn}
                for seed in plan.seeds:
                    key = trial_key(plan.method, sweep_values, seed)
                    if key in seen:  # two draws rounded to the same value: one trial
                        continue
                    seen.add(key)
                    config = {**fixed, **sweep_values}
                    trials.append(TrialSpec(key, plan.method, seed, config, sweep_values))
    return trials


def base_config(spec: JobSpec) -> dict[str, Any]:
    """The job-wide knobs (``config`` with ``epochs`` applied): what the references train with."""
    return dict(spec.config)
