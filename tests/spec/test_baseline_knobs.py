"""The authors' baselines in the one vocabulary: job specs name them, sweeps over their knobs
multiply only their own trials, and the ReconBoost weight rule names the field."""

from __future__ import annotations

import pytest

from synib_spec import SpecError
from synib_spec.jobs import count_trials, parse_job_spec, plan_methods
from synib_spec.knobs import KNOBS, METHODS, method_reads

NEW = ["reconboost", "dnr", "mcr", "agm", "mla", "pmr"]


def test_each_new_method_reads_its_own_knobs_only() -> None:
    assert set(NEW) <= set(METHODS)
    for knob in KNOBS.values():
        prefix = knob.name.split("_")[0]
        if prefix in NEW:
            assert knob.methods == (prefix,), knob.name
    assert method_reads("dnr", "w_uni") and method_reads("mcr", "uni_detach")
    assert not method_reads("mla", "w_uni") and not method_reads("reconboost", "lambda")


def test_a_sweep_over_a_baseline_knob_multiplies_only_that_baseline() -> None:
    parsed = parse_job_spec({
        "dataset_id": "d1", "methods": ["vanilla", *NEW], "seeds": [0, 1],
        "sweep": {"pmr_alpha": {"type": "grid", "values": [0.5, 1.0, 2.0]},
                  "reconboost_stage_epochs": {"type": "grid", "values": [1, 4]}},
    })  # fmt: skip
    plans = {p.method: p for p in plan_methods(parsed)}
    assert plans["pmr"].trials == 6 and plans["reconboost"].trials == 4
    assert all(plans[m].trials == 2 for m in ("vanilla", "dnr", "mcr", "agm", "mla"))
    assert count_trials(parsed) == 6 + 4 + 5 * 2


def test_reconboost_weight_rule_names_the_field() -> None:
    raw = {"dataset_id": "d1", "methods": ["vanilla", "reconboost"],
           "config": {"reconboost_others_weight": 6.0}}  # fmt: skip
    with pytest.raises(SpecError) as info:
        parse_job_spec(raw)
    assert info.value.field == "config.reconboost_others_weight"
    parse_job_spec({**raw, "methods": ["vanilla"]})  # vanilla does not read the weights
