"""A service's policy on submitted specs (``SpecLimits``): epochs, trials per job and a floor on
the resources a trial asks for, each refused with the field, the value and the limit."""

from __future__ import annotations

from typing import Any

import pytest

from synib_spec import SpecError
from synib_spec.jobs import DEFAULT_LIMITS, count_trials, parse_job_spec


def spec(**fields: Any) -> dict[str, Any]:
    return {"dataset_id": "d1", "methods": ["vanilla", "synib"], "sweep": {}, **fields}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"epochs": 2**31 - 1}, "epochs"),
        ({"config": {"epochs": 1001}}, "config.epochs"),
        ({"methods": ["vanilla", {"name": "synib", "config": {"epochs": 5000}}]},
         "methods[1].config.epochs"),
        ({"sweep": {"epochs": {"type": "grid", "values": [10, 2000]}}}, "sweep.epochs.values[1]"),
    ],
)  # fmt: skip
def test_epochs_above_the_limit_are_refused_wherever_they_are_set(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_job_spec(spec(**changes), limits=DEFAULT_LIMITS)
    assert info.value.field == field
    assert "at most 1000 allowed (limit max_epochs)" in info.value.reason


def test_the_limits_accept_what_they_allow() -> None:
    raw = spec(
        epochs=1000,
        resources={"cpus_per_trial": 0.1, "gpus_per_trial": 0.05},
        sweep={"lambda": {"type": "grid", "values": [0.0, 1.0]}},
        seeds=list(range(66)),
    )
    assert count_trials(parse_job_spec(raw, limits=DEFAULT_LIMITS)) == 198
    parse_job_spec(spec(resources={"gpus_per_trial": 0}), limits=DEFAULT_LIMITS)


def test_a_sliver_of_a_cpu_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_job_spec(spec(resources={"cpus_per_trial": 1e-9}), limits=DEFAULT_LIMITS)
    assert info.value.field == "resources.cpus_per_trial"
    assert info.value.reason == "1e-09 CPUs, at least 0.1 per trial (limit min_cpus_per_trial)"


def test_a_sliver_of_a_gpu_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        parse_job_spec(spec(resources={"gpus_per_trial": 0.01}), limits=DEFAULT_LIMITS)
    assert info.value.field == "resources.gpus_per_trial"
    assert "0 (no GPU) or at least 0.05 per trial (limit min_gpus_per_trial)" in info.value.reason


def test_too_many_trials_name_the_limit() -> None:
    # num_samples 1000 x 5 seeds: 5,000 trials of synib (vanilla does not read lambda: 5).
    raw = spec(
        sweep={"lambda": {"type": "uniform", "low": 0.0, "high": 9.0}},
        num_samples=1000,
        seeds=list(range(5)),
    )
    with pytest.raises(SpecError) as info:
        parse_job_spec(raw, limits=DEFAULT_LIMITS)
    assert info.value.field == "sweep"
    assert info.value.reason.startswith("5005 trials")
    assert "at most 200 allowed (limit max_trials_per_job)" in info.value.reason


def test_a_stored_spec_is_read_back_without_the_policy() -> None:
    # The worker reads a stored spec with no limits: an operator who lowers a limit does not
    # fail the jobs already accepted.
    parsed = parse_job_spec(spec(epochs=5000, resources={"cpus_per_trial": 0.01}))
    assert parsed.epochs == 5000 and parsed.resources.cpus_per_trial == 0.01
