"""Trial planning: methods x sweep values x seeds, with knobs a method ignores collapsed."""

from __future__ import annotations

import math

import pytest

from worker.trial_plan import (
    PlanError,
    default_knob_reader,
    draw_random_values,
    plan_trials,
    sweep_points,
    trial_key,
)


def keys(spec: dict) -> list[str]:
    return [t.key for t in plan_trials(spec)]


def test_grid_sweep_crossed_with_seeds_and_collapsed_for_vanilla() -> None:
    spec = {
        "methods": ["vanilla", "synib"],
        "sweep": {"lambda": {"type": "grid", "values": [0.1, 1, 10]}},
        "seeds": [0, 1],
    }
    assert keys(spec) == [
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
    spec = {
        "methods": ["vanilla", {"name": "synib", "config": {"mask": "full", "lambda": 3.0}}],
        "config": {"hidden": 16, "epochs": 9},
        "epochs": 2,
        "sweep": {"lambda": {"type": "choice", "values": [0.5]}},
    }
    vanilla, synib = plan_trials(spec)
    assert vanilla.config == {"hidden": 16, "epochs": 2}
    assert vanilla.sweep_values == {}
    assert synib.config == {"hidden": 16, "epochs": 2, "mask": "full", "lambda": 0.5}
    assert synib.sweep_values == {"lambda": 0.5}
    assert (synib.method, synib.seed, synib.key) == ("synib", 0, "synib|lambda=0.5|seed=0")


def test_default_seed_is_zero_and_empty_sweep_gives_one_trial_per_method() -> None:
    assert keys({"methods": ["vanilla", "ogm_ge"]}) == ["vanilla|seed=0", "ogm_ge|seed=0"]


def test_random_draws_are_stable_in_bounds_and_rounded() -> None:
    entry = {"type": "loguniform", "low": 0.1, "high": 10.0}
    first = draw_random_values("lambda", entry, 5)
    assert first == draw_random_values("lambda", entry, 5)
    assert len(set(first)) == 5
    for v in first:
        assert 0.1 <= v <= 10.0
        assert v == float(f"{v:.4g}")
    # a different knob name gives different draws
    assert draw_random_values("lr", entry, 5) != first


def test_uniform_draw_spreads_over_the_interval() -> None:
    values = draw_random_values("dropout", {"type": "uniform", "low": 0.0, "high": 0.5}, 200)
    assert min(values) < 0.1 and max(values) > 0.4
    logs = draw_random_values("lambda", {"type": "loguniform", "low": 1e-3, "high": 1e3}, 200)
    # log-uniform: about half the draws lie below the geometric middle (1.0)
    below = sum(v < 1.0 for v in logs)
    assert 60 < below < 140
    assert all(math.isfinite(v) for v in logs)


def test_grid_crossed_with_joint_random_samples() -> None:
    points = sweep_points(
        {
            "lr": {"type": "grid", "values": [0.001, 0.01]},
            "lambda": {"type": "uniform", "low": 1, "high": 2},
        },
        num_samples=3,
    )
    assert len(points) == 6
    assert [p["lr"] for p in points] == [0.001] * 3 + [0.01] * 3
    assert [p["lambda"] for p in points[:3]] == [p["lambda"] for p in points[3:]]


def test_random_sweep_collapses_for_methods_that_ignore_it() -> None:
    spec = {
        "methods": ["vanilla", "synib"],
        "sweep": {
            "lr": {"type": "grid", "values": [0.001, 0.01]},
            "lambda": {"type": "loguniform", "low": 0.1, "high": 10},
        },
        "num_samples": 2,
        "seeds": [0],
    }
    trials = plan_trials(spec)
    vanilla = [t for t in trials if t.method == "vanilla"]
    synib = [t for t in trials if t.method == "synib"]
    assert [t.key for t in vanilla] == ["vanilla|lr=0.001|seed=0", "vanilla|lr=0.01|seed=0"]
    assert len(synib) == 4
    assert len({t.key for t in trials}) == len(trials)
    assert plan_trials(spec) == trials  # stable: a resumed job finds the same keys


def test_key_format_of_floats_bools_and_strings() -> None:
    assert trial_key("synib", {"mask_hard": True, "mask": "full", "lr": 1e-05}, 3) == (
        "synib|lr=1e-05|mask=full|mask_hard=true|seed=3"
    )


def test_default_reader_follows_method_knobs() -> None:
    reads = default_knob_reader()
    assert reads("synib", "lambda") and not reads("vanilla", "lambda")
    assert reads("vanilla", "lr") and reads("ensemble", "hidden")
    assert reads("ogm_ge", "ogm_alpha") and not reads("synib", "ogm_alpha")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"methods": []}, "methods"),
        ({"methods": ["synib", "synib"]}, "methods"),
        ({"methods": ["nope"]}, "methods"),
        ({"methods": [{"config": {}}]}, "methods"),
        ({"methods": ["synib"], "seeds": [1, 1]}, "seeds"),
        ({"methods": ["synib"], "sweep": {"lambda": {"type": "bayes"}}}, "sweep.lambda.type"),
        (
            {"methods": ["synib"], "sweep": {"lambda": {"type": "grid", "values": []}}},
            "sweep.lambda.values",
        ),
        (
            {
                "methods": ["synib"],
                "sweep": {"lambda": {"type": "loguniform", "low": 0, "high": 1}},
            },
            "sweep.lambda",
        ),
        (
            {"methods": ["synib"], "sweep": {"lambda": {"type": "uniform", "low": 2, "high": 1}}},
            "sweep.lambda",
        ),
    ],
)
def test_bad_specs_name_the_field(spec: dict, field: str) -> None:
    with pytest.raises(PlanError) as info:
        plan_trials(spec)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_rounded_random_draws_stay_within_the_bounds() -> None:
    # Rounding to 4 significant digits turned draws in [0.9999, 0.99999) into 1.0, which is
    # outside dropout's range (< 1): the API accepted the job and the worker then failed it.
    values = draw_random_values("dropout", {"type": "uniform", "low": 0.9999, "high": 0.99999}, 50)
    assert all(0.9999 <= v <= 0.99999 for v in values), values
    assert len(set(values)) > 1
    low, high = 1.00001, 1.00009  # loguniform: the rounding goes down past low
    values = draw_random_values("lambda", {"type": "loguniform", "low": low, "high": high}, 50)
    assert all(low <= v <= high for v in values), values
