"""The worker's concrete trials: grid points from the spec, random axes drawn with Ray Tune's
samplers once per draw for all seeds, stable for the same job."""

from __future__ import annotations

from typing import Any

from synib_spec.jobs import count_trials, parse_job_spec
from worker.trial_plan import plan_trials


def spec(**fields: Any) -> Any:
    return parse_job_spec({"dataset_id": "d", "methods": ["vanilla", "synib"], **fields})


def test_grid_trials_in_a_stable_order() -> None:
    parsed = spec(sweep={"lambda": {"type": "grid", "values": [0.1, 1, 10]}}, seeds=[0, 1])
    assert [t.key for t in plan_trials(parsed)] == [
        "vanilla|seed=0",
        "vanilla|seed=1",
        "synib|lambda=0.1|seed=0",
        "synib|lambda=0.1|seed=1",
        "synib|lambda=1|seed=0",
        "synib|lambda=1|seed=1",
        "synib|lambda=10|seed=0",
        "synib|lambda=10|seed=1",
    ]


def test_trial_config_layers_spec_epochs_method_config_and_sweep() -> None:
    parsed = parse_job_spec(
        {
            "dataset_id": "d",
            "methods": ["vanilla", {"name": "synib", "config": {"mask": "full", "lambda": 3.0}}],
            "config": {"hidden": 16, "epochs": 9},
            "epochs": 2,
            "sweep": {"lambda": {"type": "choice", "values": [0.5]}},
        }
    )
    vanilla, synib = plan_trials(parsed)
    assert vanilla.config == {"hidden": 16, "epochs": 2} and vanilla.sweep_values == {}
    assert synib.config == {"hidden": 16, "epochs": 2, "mask": "full", "lambda": 0.5}
    assert (synib.method, synib.seed, synib.key) == ("synib", 0, "synib|lambda=0.5|seed=0")


def test_random_draws_are_shared_by_seeds_stable_per_job_and_in_bounds() -> None:
    parsed = spec(
        sweep={"lambda": {"type": "loguniform", "low": 0.001, "high": 100}},
        num_samples=5,
        seeds=[0, 1],
    )
    trials = plan_trials(parsed, "job-1")
    assert len(trials) == count_trials(parsed) == 2 + 10
    drawn = [t.sweep_values["lambda"] for t in trials if t.method == "synib"]
    assert drawn[0::2] == drawn[1::2]  # seed 0 and seed 1 of each draw: the same value
    assert all(0.001 <= v <= 100 for v in drawn) and len(set(drawn)) == 5
    assert all(v == float(f"{v:.4g}") for v in drawn)  # 4 significant digits
    assert [t.key for t in plan_trials(parsed, "job-1")] == [t.key for t in trials]
    assert [t.key for t in plan_trials(parsed, "job-2")] != [t.key for t in trials]


def test_rounded_random_draws_stay_within_the_bounds() -> None:
    # Rounding to 4 significant digits turned draws in [0.9999, 0.99999) into 1.0, which is
    # outside dropout's range (< 1): the API accepted the job and the worker then failed it.
    parsed = spec(
        methods=["synib"], sweep={"dropout": {"type": "uniform", "low": 0.9999, "high": 0.99999}}
    )
    values = [t.sweep_values["dropout"] for t in plan_trials(parsed, "j")]
    assert all(0.9999 <= v <= 0.99999 for v in values), values
