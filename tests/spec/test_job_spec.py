"""Job specs: one parse (strict, every error naming its field), the plan and its count, the
default sweep, and the stored JSON read back unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from synib_spec import SpecError, SpecErrors
from synib_spec.jobs import (
    DEFAULT_SWEEP,
    SpecLimits,
    count_trials,
    format_value,
    parse_job_spec,
    plan_methods,
    trial_key,
)


def spec(**fields: Any) -> dict[str, Any]:
    return {"dataset_id": "d1", "methods": ["vanilla", "synib"], **fields}


def test_grid_sweep_is_crossed_with_seeds_and_collapsed_for_methods_that_ignore_it() -> None:
    parsed = parse_job_spec(
        spec(sweep={"lambda": {"type": "grid", "values": [0.1, 1, 10]}}, seeds=[0, 1])
    )
    plans = {p.method: p for p in plan_methods(parsed)}
    assert plans["vanilla"].grid == [{}] and plans["vanilla"].trials == 2
    assert plans["synib"].grid == [{"lambda": 0.1}, {"lambda": 1.0}, {"lambda": 10.0}]
    assert count_trials(parsed) == 2 + 6


def test_random_axes_are_drawn_num_samples_times_for_methods_that_read_them() -> None:
    parsed = parse_job_spec(
        spec(
            methods=["vanilla", "synib", "ogm_ge"],
            sweep={
                "lambda": {"type": "loguniform", "low": 0.01, "high": 10},
                "mask": {"type": "grid", "values": ["random", "full"]},
            },
            num_samples=3,
            seeds=[0, 1],
        )
    )
    plans = {p.method: p for p in plan_methods(parsed)}
    assert (plans["vanilla"].draws, plans["vanilla"].trials) == (1, 2)
    assert (plans["synib"].draws, len(plans["synib"].grid), plans["synib"].trials) == (3, 2, 12)
    assert [a.knob for a in plans["synib"].random] == ["lambda"]
    assert count_trials(parsed) == 2 + 12 + 2


def test_without_a_sweep_the_penalty_weight_is_swept_over_its_default_decades() -> None:
    parsed = parse_job_spec(spec())
    values = DEFAULT_SWEEP["lambda"]["values"]
    assert [a.knob for a in parsed.sweep] == ["lambda"]
    assert count_trials(parsed) == 1 + len(values)
    assert count_trials(parse_job_spec(spec(sweep={}))) == 2  # "{}" means no sweep


def test_config_layers_and_epochs() -> None:
    parsed = parse_job_spec(
        spec(
            methods=["vanilla", {"name": "synib", "config": {"mask": "full", "lambda": 3.0}}],
            config={"hidden": 16, "epochs": 9},
            epochs=2,
        )
    )
    assert parsed.method_config("vanilla") == {"hidden": 16, "epochs": 2}
    assert parsed.method_config("synib") == {
        "hidden": 16,
        "epochs": 2,
        "mask": "full",
        "lambda": 3.0,
    }
    assert parsed.knob_values("synib", "lambda") == [0.0, 0.1, 0.3, 1.0, 3.0, 10.0]  # default
    assert parsed.knob_values("vanilla", "mask") == ["random"]


def test_the_stored_json_reads_back_as_the_same_spec() -> None:
    raw = spec(
        name="n",
        methods=["vanilla", {"name": "synib", "config": {"mask": "full"}}],
        config={"hidden": 16},
        epochs=3,
        sweep={"lr": {"type": "uniform", "low": 0.001, "high": 0.01}},
        num_samples=2,
        seeds=[3, 1],
        scheduler={"type": "asha", "grace_period": 2},
        resources={"cpus_per_trial": 0.5},
        max_concurrent_trials=4,
        baseline="synib",
    )
    parsed = parse_job_spec(raw)
    stored = parsed.to_json()
    assert parse_job_spec(stored) == parsed
    assert stored["config"] == {"hidden": 16} and stored["epochs"] == 3
    assert parsed.resources.threads == 1 and parsed.seeds == (3, 1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"methods": []}, "methods"),
        ({"methods": ["synib", "synib"]}, "methods"),
        ({"methods": ["nope"]}, "methods[0]"),
        ({"methods": [{"config": {}}]}, "methods[0].name"),
        ({"methods": [{"name": "synib", "config": {"lr": "1e-3"}}]}, "methods[0].config.lr"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"seeds": [-1]}, "seeds[0]"),
        ({"seeds": [False]}, "seeds[0]"),
        ({"epochs": "5"}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"config": {"hidden": 0}}, "config.hidden"),
        ({"config": {"lamda": 1}}, "config.lamda"),
        ({"sweep": {"lambda": {"type": "bayes"}}}, "sweep.lambda.type"),
        ({"sweep": {"lambda": {"type": "grid", "values": []}}}, "sweep.lambda.values"),
        ({"sweep": {"lambda": {"type": "grid", "values": [1, 1.0]}}}, "sweep.lambda.values"),
        ({"sweep": {"lambda": {"type": "grid", "values": [1, -1]}}}, "sweep.lambda.values[1]"),
        ({"sweep": {"lambda": {"type": "loguniform", "low": 0, "high": 1}}}, "sweep.lambda.low"),
        ({"sweep": {"lambda": {"type": "uniform", "low": 2, "high": 1}}}, "sweep.lambda.low"),
        ({"sweep": {"mask": {"type": "uniform", "low": 0, "high": 1}}}, "sweep.mask.type"),
        ({"sweep": {"nope": {"type": "grid", "values": [1]}}}, "sweep.nope"),
        ({"scheduler": {"type": "hyperband"}}, "scheduler.type"),
        ({"scheduler": {"reduction_factor": 1}}, "scheduler.reduction_factor"),
        ({"resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial"),
        ({"resources": {"gpus": 1}}, "resources.gpus"),
        ({"baseline": "nope"}, "baseline"),
        ({"extra": 1}, "extra"),
        ({"num_samples": 0}, "num_samples"),
        ({"config": {"feature_norm": "none"}, "methods": ["synib"]}, "config.feature_norm"),
    ],
)
def test_bad_specs_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_job_spec(spec(**changes))
    assert info.value.field == field, info.value
    assert isinstance(info.value, ValueError)


def test_a_rule_broken_at_one_sweep_point_names_the_point() -> None:
    with pytest.raises(SpecError) as info:
        parse_job_spec(
            spec(
                config={"feature_norm": "none"},
                sweep={"mask_level": {"type": "grid", "values": ["input", "feature"]}},
            )
        )
    assert info.value.field == "config.feature_norm"
    assert "method 'synib' at sweep point mask_level=feature" in info.value.reason
    # vanilla alone reads feature_norm but not mask_level: nothing to refuse
    parse_job_spec(spec(methods=["vanilla"], config={"feature_norm": "none"}))


def test_too_many_trials_are_refused() -> None:
    raw = spec(sweep={"lambda": {"type": "grid", "values": [0.1, 1.0]}}, seeds=[0, 1, 2])
    assert count_trials(parse_job_spec(raw, limits=SpecLimits(max_trials=9))) == 9
    with pytest.raises(SpecError, match="at most 8") as info:
        parse_job_spec(raw, limits=SpecLimits(max_trials=8))
    assert info.value.field == "sweep"


def test_key_format_of_floats_bools_and_strings() -> None:
    assert (
        trial_key("synib", {"lambda": 1.0, "mask": "full"}, 0) == "synib|lambda=1|mask=full|seed=0"
    )
    assert trial_key("vanilla", {}, 3) == "vanilla|seed=3"
    assert format_value(True) == "true" and format_value(0.001) == "0.001"


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(SpecErrors) as info:
        parse_job_spec(spec(methods=["nope"], config={"lr": -1}, seeds=[]))
    assert [e.field for e in info.value.all()] == ["methods[0]", "config.lr", "seeds"]
    assert str(info.value).startswith("methods[0]: unknown method 'nope'")
    assert "; config.lr: expected a number > 0, got -1; seeds: " in str(info.value)


def test_spec_warnings_name_the_knob_and_the_method_once() -> None:
    from synib_spec.jobs import spec_warnings

    base = {"dataset_id": "d", "methods": ["vanilla", "synib"], "seeds": [0, 1]}
    assert spec_warnings(parse_job_spec(base)) == []  # the default sweep: 6 points, no warning
    risky = parse_job_spec({**base, "config": {"mask_level": "input", "feature_norm": "layernorm"}})
    (line,) = spec_warnings(risky)  # one line for the 6 sweep points and 2 seeds
    assert line.startswith("config.feature_norm: mask_level='input' with feature_norm='layernorm'")
    assert line.endswith("(method 'synib')")
