"""Backbone specs: parsing (each bad field named) and which encoder reads which modality kind."""

from __future__ import annotations

import pytest

from synib_spec.backbones import (
    PACKAGED_MODELS,
    BackboneSpec,
    ModelInfo,
    check_backbone_fits,
    parse_backbones,
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
