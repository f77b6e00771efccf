"""TrainConfig, the knob vocabulary, parsing and errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from synib_core.config import (
    KNOBS,
    METHODS,
    ConfigFileError,
    KnobError,
    TrainConfig,
    check_method_rules,
    config_from_knobs,
    load_config_file,
    parse_modality_weights,
)
from synib_spec.knobs import KNOBS_LIST


def test_train_config_has_one_field_per_knob_of_the_table() -> None:
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert fields == [k.attribute for k in KNOBS_LIST]
    assert TrainConfig().to_knobs() == {k.name: k.default for k in KNOBS_LIST}
    assert "lam" in fields and "lambda" in TrainConfig().to_knobs()
    assert METHODS[:2] == ("vanilla", "synib")
    assert set(KNOBS) == set(TrainConfig().to_knobs())


def test_strings_are_parsed() -> None:
    cfg = config_from_knobs(
        {"lr": "1e-3", "mask_hard": "true", "hidden": "64", "lambda": "10", "amp": "0"}
    )
    assert (cfg.lr, cfg.mask_hard, cfg.hidden, cfg.lam, cfg.amp) == (1e-3, True, 64, 10.0, False)
    assert isinstance(cfg.hidden, int) and isinstance(cfg.lam, float)
    assert config_from_knobs({"epochs": 5.0, "w_uni": 1}).epochs == 5
    assert config_from_knobs({"mask_hard": "Yes", "mask_prob": 1}).mask_hard is True


@pytest.mark.parametrize(
    ("knobs", "key", "fragment"),
    [
        ({"lr": "0"}, "lr", "> 0"),
        ({"lr": "fast"}, "lr", "a number > 0"),
        ({"hidden": 1.5}, "hidden", "an integer >= 1"),
        ({"hidden": True}, "hidden", "an integer"),
        ({"dropout": 1}, "dropout", "< 1"),
        ({"mask_prob": 0}, "mask_prob", "> 0"),
        ({"weight_decay": float("nan")}, "weight_decay", ">= 0"),
        ({"mask": "everything"}, "mask", "'random', 'full', 'oracle', 'learned'"),
        ({"fusion": "sum_unimodal"}, "fusion", "'concat_mlp', 'transformer'"),
        ({"amp": "maybe"}, "amp", "true or false"),
        ({"lam": 1.0}, "lam", "unknown knob"),
        ({"modality_weights": "a=1,b"}, "modality_weights", "name=w"),
        ({"modality_weights": "a=-1"}, "modality_weights", ">= 0"),
    ],
)
def test_bad_values_name_the_key(knobs: dict, key: str, fragment: str) -> None:
    with pytest.raises(KnobError) as info:
        config_from_knobs(knobs)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("knobs", "key", "fragment"),
    [
        ({"mask": "learned"}, "w_uni", "w_uni > 0"),
        ({"penalty": "anchor"}, "w_uni", "w_uni > 0"),
        ({"feature_norm": "none"}, "feature_norm", "mask_level"),
    ],
)
def test_rules_between_knobs_apply_to_methods_that_read_them(
    knobs: dict, key: str, fragment: str
) -> None:
    cfg = config_from_knobs(knobs)  # each knob is valid on its own
    with pytest.raises(KnobError) as info:
        check_method_rules(cfg, "synib")
    assert info.value.key == key and fragment in info.value.reason
    check_method_rules(cfg, "vanilla")  # vanilla never masks: no mask rule applies to it


def test_cross_field_checks_pass_with_unimodal_heads() -> None:
    cfg = config_from_knobs({"mask": "learned", "penalty": "anchor", "w_uni": "0.5"})
    assert (cfg.mask, cfg.penalty, cfg.w_uni) == ("learned", "anchor", 0.5)
    check_method_rules(cfg, "synib")
    check_method_rules(config_from_knobs({"feature_norm": "none", "mask_level": "input"}), "synib")


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(KnobError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().lr = 1.0  # type: ignore[misc]


def test_base_and_round_trip() -> None:
    base = TrainConfig(hidden=7, lam=3.0)
    cfg = config_from_knobs({"lr": 0.01}, base=base)
    assert (cfg.hidden, cfg.lam, cfg.lr) == (7, 3.0, 0.01)
    assert config_from_knobs(cfg.to_knobs()) == cfg


def test_modality_weights() -> None:
    assert parse_modality_weights("") == {}
    assert parse_modality_weights("audio=1, video=0.5") == {"audio": 1.0, "video": 0.5}
    cfg = TrainConfig(modality_weights="b=2")
    assert cfg.modality_weight_map(("a", "b")) == {"a": 1.0, "b": 2.0}
    with pytest.raises(KnobError, match="unknown modalities"):
        cfg.modality_weight_map(("a", "c"))


def test_load_config_file(tmp_path: Path) -> None:
    (tmp_path / "k.yaml").write_text("lambda: 10\nmask: full\nlr: 1e-3\n")
    (tmp_path / "k.json").write_text(json.dumps({"hidden": 32, "amp": "false"}))
    y = load_config_file(tmp_path / "k.yaml")
    assert (y.lam, y.mask, y.lr) == (10.0, "full", 1e-3)
    assert load_config_file(tmp_path / "k.json").hidden == 32
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigFileError, match="mapping"):
        load_config_file(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigFileError, match="YAML"):
        load_config_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")
    (tmp_path / "unknown.yaml").write_text("lamda: 1\n")
    with pytest.raises(KnobError, match="lamda"):
        load_config_file(tmp_path / "unknown.yaml")
