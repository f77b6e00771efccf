"""TrainConfig, the knob vocabulary, parsing and errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from synib_core.config import (
    KNOBS,
    METHOD_KNOBS,
    METHODS,
    SHARED_KNOBS,
    ConfigFileError,
    KnobError,
    TrainConfig,
    config_from_knobs,
    load_config_file,
    parse_modality_weights,
)

# The table of docs/INTERNALS.md, copied by hand: knob -> (type, default).
INTERNALS_TABLE = {
    "encoder": ("str", "mlp"),
    "hidden": ("int", 128),
    "encoder_layers": ("int", 2),
    "fusion": ("str", "concat_mlp"),
    "fusion_hidden": ("int", 128),
    "fusion_layers": ("int", 1),
    "feature_norm": ("str", "layernorm"),
    "epochs": ("int", 30),
    "batch_size": ("int", 64),
    "lr": ("float", 3e-4),
    "weight_decay": ("float", 1e-5),
    "optimizer": ("str", "adam"),
    "lr_schedule": ("str", "constant"),
    "dropout": ("float", 0.0),
    "patience": ("int", 0),
    "lambda": ("float", 1.0),
    "penalty": ("str", "kl_uniform"),
    "mask": ("str", "random"),
    "mask_prob": ("float", 0.5),
    "mask_level": ("str", "feature"),
    "fill": ("str", "swap"),
    "noise_std": ("float", 1.0),
    "mask_steps": ("int", 20),
    "mask_lr": ("float", 0.1),
    "mask_sparsity": ("float", 0.1),
    "mask_tau": ("float", 1.0),
    "mask_hard": ("bool", False),
    "learned_direction": ("str", "keep_unimodal"),
    "w_uni": ("float", 0.0),
    "uni_detach": ("bool", False),
    "warmup_epochs": ("int", 0),
    "modality_weights": ("str", ""),
    "modality_dropout_prob": ("float", 0.3),
    "ogm_alpha": ("float", 0.5),
    "amp": ("bool", False),
    "device": ("str", "auto"),
}


def test_knobs_match_the_internals_table_and_the_dataclass() -> None:
    assert {k: (s.type, s.default) for k, s in KNOBS.items()} == INTERNALS_TABLE
    assert TrainConfig().to_knobs() == {k: d for k, (_, d) in INTERNALS_TABLE.items()}
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert fields == [("lam" if k == "lambda" else k) for k in INTERNALS_TABLE]
    assert KNOBS["encoder"].choices == ("mlp", "gru", "transformer", "cnn", "identity")
    json.dumps({k: s.to_dict() for k, s in KNOBS.items()})  # plain JSON for api/knobs.py


def test_method_knobs() -> None:
    assert set(METHOD_KNOBS) == set(METHODS)
    assert METHODS[:2] == ("vanilla", "synib")
    for method, knobs in METHOD_KNOBS.items():
        assert set(knobs) <= set(KNOBS), method
        assert not set(knobs) & set(SHARED_KNOBS), method
    assert "lambda" not in METHOD_KNOBS["vanilla"]
    assert "penalty" not in METHOD_KNOBS["masking_only"]
    assert {"lambda", "penalty", "mask", "fill", "mask_prob"} <= set(METHOD_KNOBS["synib"])


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
        ({"mask": "learned"}, "w_uni", "w_uni > 0"),
        ({"penalty": "anchor"}, "w_uni", "w_uni > 0"),
    ],
)
def test_bad_values_name_the_key(knobs: dict, key: str, fragment: str) -> None:
    with pytest.raises(KnobError) as info:
        config_from_knobs(knobs)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cross_field_checks_pass_with_unimodal_heads() -> None:
    cfg = config_from_knobs({"mask": "learned", "penalty": "anchor", "w_uni": "0.5"})
    assert (cfg.mask, cfg.penalty, cfg.w_uni) == ("learned", "anchor", 0.5)


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


def test_feature_norm_none_needs_input_level_masks() -> None:
    import pytest

    from synib_core.config import KnobError, config_from_knobs

    with pytest.raises(KnobError) as err:
        config_from_knobs({"feature_norm": "none"})
    assert err.value.key == "feature_norm" and "mask_level" in err.value.reason
    assert config_from_knobs({"feature_norm": "none", "mask_level": "input"}).feature_norm == "none"
