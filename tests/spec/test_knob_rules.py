"""Rules between knobs apply only to the methods that read every knob of the rule."""

from __future__ import annotations

import pytest

from synib_core.backbones import resolved_feature_norm
from synib_core.config import METHODS, KnobError, TrainConfig, check_method_rules
from synib_spec.knobs import broken_rules, method_reads, resolve_feature_norm, resolve_fill


def check_rules(method: str, knobs: dict[str, object]) -> list[tuple[str, str]]:
    """(knob to change, severity) of every rule broken, errors first."""
    return [(rule.field, rule.severity) for rule, _ in broken_rules(method, knobs)]


def enforce_rules(method: str, knobs: dict[str, object]) -> None:
    check_method_rules(
        TrainConfig(**{"lam" if k == "lambda" else k: v for k, v in knobs.items()}), method
    )


def test_vanilla_ignores_the_mask_level_rule() -> None:
    knobs = {"feature_norm": "none", "mask_level": "feature"}
    for method in ("vanilla", "modality_dropout", "ensemble", "ogm_ge", "mmpareto"):
        assert check_rules(method, knobs) == [], method
        enforce_rules(method, knobs)  # no error
    for method in ("synib", "masking_only"):
        (violation,) = check_rules(method, knobs)
        assert violation == ("feature_norm", "error")
        with pytest.raises(KnobError, match="feature_norm"):
            enforce_rules(method, knobs)


def test_auto_fill_follows_the_mask_level() -> None:
    assert resolve_fill({}) == "swap"  # the defaults: auto, feature-level masks
    assert resolve_fill({"mask_level": "input"}) == "noise"
    assert resolve_fill({"fill": "swap", "mask_level": "input"}) == "swap"  # set: kept
    assert resolve_fill({"fill": "zeros", "mask_level": "feature"}) == "zeros"


def test_auto_feature_norm_follows_the_mask_level() -> None:
    assert resolve_feature_norm({"feature_norm": "auto", "mask_level": "feature"}) == "layernorm"
    assert resolve_feature_norm({"feature_norm": "auto", "mask_level": "input"}) == "none"
    assert resolve_feature_norm({"feature_norm": "none", "mask_level": "input"}) == "none"
    assert resolve_feature_norm({}) == "layernorm"  # the defaults: auto, feature-level masks
    assert check_rules("synib", {"feature_norm": "auto", "mask_level": "input"}) == []
    assert check_rules("synib", {"feature_norm": "auto"}) == []
    assert resolved_feature_norm(TrainConfig(mask_level="input", feature_norm="none")) == "none"


def test_input_level_with_layernorm_warns_for_masking_methods_only() -> None:
    knobs = {"feature_norm": "layernorm", "mask_level": "input"}
    ((rule, reason),) = broken_rules("synib", knobs)
    assert rule.severity == "warning" and "feature_norm='auto' (or 'none')" in reason
    with pytest.warns(UserWarning, match="feature_norm"):
        enforce_rules("synib", knobs)
    assert check_rules("vanilla", knobs) == []


@pytest.mark.parametrize(
    ("knobs", "knob"),
    [
        ({"mask": "oracle", "mask_level": "feature"}, "mask_level"),
        ({"mask": "learned", "w_uni": 0.0, "mask_level": "input", "feature_norm": "none"}, "w_uni"),
        ({"penalty": "anchor", "w_uni": 0.0}, "w_uni"),
    ],
)
def test_other_rules_name_the_knob_to_change(knobs: dict[str, object], knob: str) -> None:
    assert [k for k, severity in check_rules("synib", knobs) if severity == "error"] == [knob]


def test_oracle_at_feature_level_is_fine_with_identity_encoders() -> None:
    knobs = {"mask": "oracle", "mask_level": "feature", "encoder": "identity"}
    assert check_rules("synib", knobs) == []


def test_method_reads_matches_the_method_knob_table() -> None:
    assert method_reads("vanilla", "feature_norm") and not method_reads("vanilla", "mask_level")
    assert all(method_reads(m, "lr") for m in METHODS)
    assert not method_reads("masking_only", "penalty") and method_reads("synib", "penalty")
