"""Backbone specs: parsing (each bad field named) and which encoder reads which modality kind."""

from __future__ import annotations

import pytest

from synib_spec.backbones import (
    PACKAGED_MODELS,
    BackboneSpec,
    ModelInfo,
    check_backbone_fits,
    check_dataset_backbones,
    check_spec_backbones,
    parse_backbones,
    summary_kinds,
)
from synib_spec.errors import SpecError
from synib_spec.jobs import parse_job_spec

MINILM = PACKAGED_MODELS[0][0]


def test_a_pretrained_backbone_gets_its_defaults_and_round_trips_through_the_stored_spec() -> None:
    spec = parse_job_spec(
        {
            "dataset_id": "d1",
            "methods": ["vanilla"],
            "backbones": {"text": {"encoder": "pretrained", "model": "all-minilm-l6-v2"}},
        }
    )
    assert spec.backbones == {
        "text": BackboneSpec("pretrained", "all-minilm-l6-v2", "frozen", "mean")
    }
    assert parse_job_spec(spec.to_json()) == spec
    assert spec.to_json()["backbones"]["text"]["train"] == "frozen"


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"a": {"encoder": "resnet"}}, "backbones.a.encoder", "expected one of"),
        ({"a": {"encoder": "mlp", "model": "x"}}, "backbones.a.model", "only a 'pretrained'"),
        ({"a": {"encoder": "pretrained"}}, "backbones.a.model", "needs a model name"),
        (
            {"a": {"encoder": "pretrained", "model": "m", "train": "all"}},
            "backbones.a.train",
            "last_layers",
        ),
        (
            {"a": {"encoder": "pretrained", "model": "m", "pooling": "max"}},
            "backbones.a.pooling",
            "cls",
        ),
        ({"a": {"encoder": "mlp", "depth": 2}}, "backbones.a.depth", "unknown field"),
        ({"a": "mlp"}, "backbones.a", "expected an object"),
        (["mlp"], "backbones", "modality -> backbone"),
    ],
)
def test_a_bad_backbone_names_its_field(raw: object, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_backbones(raw)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_raw_text_needs_a_pretrained_text_model() -> None:
    with pytest.raises(SpecError, match="cannot read text data; use one of pretrained"):
        check_backbone_fits("caption", "text", BackboneSpec("mlp"), None)
    with pytest.raises(SpecError, match="no worker offers the model 'nope'"):
        check_backbone_fits("caption", "text", BackboneSpec("pretrained", "nope"), None)
    voice = ModelInfo("voice", "audio", 256, "MIT", "resemblyzer", "Resemblyzer")
    with pytest.raises(
        SpecError, match="'voice' is a model for audio, but modality 'caption' holds text"
    ):
        check_backbone_fits("caption", "text", BackboneSpec("pretrained", "voice"), voice)
    check_backbone_fits("caption", "text", BackboneSpec("pretrained", MINILM.name), MINILM)
    check_backbone_fits("img", "image", BackboneSpec("cnn"), None)
    with pytest.raises(SpecError, match="'gru' cannot read vector data"):
        check_backbone_fits("x", "vector", BackboneSpec("gru"), None)


def test_model_info_round_trips_through_json() -> None:
    assert ModelInfo.from_json({**MINILM.to_json(), "extra": 1}) == MINILM


def test_summary_kinds_reads_the_kind_or_the_shape_of_an_older_summary() -> None:
    summary = {
        "modalities": [
            {"name": "caption", "shape": [10], "kind": "text"},
            {"name": "v", "shape": [10, 4]},
            {"name": "s", "shape": [10, 5, 4]},
            {"name": "img", "shape": [10, 3, 8, 8]},
            {"name": "wave", "shape": [10, 1600], "kind": "audio", "rate": 16000},
        ]
    }
    assert summary_kinds(summary) == {
        "caption": "text",
        "v": "vector",
        "s": "sequence",
        "img": "image",
        "wave": "audio",
    }
    assert summary_kinds(None) == {}


TINY = ModelInfo("tiny-bert", "text", 32, "MIT", "transformers", "/models/tiny-bert")
KINDS = {"caption": "text", "v": "vector"}
PRETRAINED = BackboneSpec("pretrained", "tiny-bert")


@pytest.mark.parametrize(
    ("backbones", "models", "field", "words"),
    [
        ({"nope": BackboneSpec("mlp")}, {}, "backbones.nope", "no modality 'nope'"),
        ({"v": BackboneSpec("gru")}, {}, "backbones.v.encoder", "'gru' cannot read vector"),
        ({"caption": PRETRAINED}, {}, "backbones.caption.model", "no worker offers"),
        ({"v": PRETRAINED}, {"tiny-bert": TINY}, "backbones.v.model", "holds vector data"),
        ({"v": PRETRAINED}, None, "backbones.v.encoder", "no pretrained model reads vector"),
        ({}, {"tiny-bert": TINY}, "backbones.caption", "read only by a pretrained text"),
    ],
)
def test_backbones_are_checked_against_the_dataset_and_the_offered_models(
    backbones: dict[str, BackboneSpec], models: dict[str, ModelInfo] | None, field: str, words: str
) -> None:
    with pytest.raises(SpecError) as caught:
        check_dataset_backbones(backbones, KINDS, models)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_fitting_backbones_pass_and_unknown_models_wait_for_a_worker() -> None:
    check_dataset_backbones({"caption": PRETRAINED}, KINDS, {"tiny-bert": TINY})
    check_dataset_backbones({"caption": PRETRAINED, "v": BackboneSpec("mlp")}, KINDS, None)


def _spec(train: str, mask_level: str, method: str = "synib") -> dict[str, object]:
    return {
        "dataset_id": "d1",
        "methods": [method],
        "sweep": {},
        "config": {"mask_level": mask_level},
        "backbones": {"caption": {"encoder": "pretrained", "model": "m", "train": train}},
    }


def test_input_masks_refuse_a_pretrained_encoder_trained_in_the_trial() -> None:
    for train in ("last_layers", "full"):
        with pytest.raises(SpecError) as caught:
            parse_job_spec(_spec(train, "input"))
        assert caught.value.field == "config.mask_level"
        assert "token ids or waveforms" in caught.value.reason
    with pytest.raises(SpecError, match="mask_level"):  # a swept mask_level too
        parse_job_spec(
            {
                **_spec("full", "feature"),
                "sweep": {"mask_level": {"type": "grid", "values": ["feature", "input"]}},
            }
        )
    parse_job_spec(_spec("frozen", "input"))  # the masks corrupt cached features then
    parse_job_spec(_spec("full", "feature"))
    parse_job_spec(_spec("full", "input", method="vanilla"))  # vanilla masks nothing
    check_spec_backbones(parse_job_spec(_spec("last_layers", "feature")))
