"""Every registered encoder and fusion: output shapes, padding, the model contract."""

from __future__ import annotations

import math

import pytest
import torch

from synib_core.backbones import (
    ENCODERS,
    FUSIONS,
    SumUnimodalFusion,
    build_model,
    to_probs,
)
from synib_core.config import KnobError, TrainConfig
from synib_core.data import DataSpec
from synib_core.objectives.base import Batch

torch.set_num_threads(1)

CFG = TrainConfig(hidden=8, encoder_layers=2, fusion_hidden=12, fusion_layers=2)
SHAPES = {
    "mlp": (5,),
    "identity": (5,),
    "gru": (6, 3),
    "transformer": (6, 3),
    "cnn": (2, 8, 8),
}


def test_registries_cover_the_knob_choices() -> None:
    assert set(ENCODERS) == {"mlp", "gru", "transformer", "cnn", "identity"}
    assert set(FUSIONS) == {"concat_mlp", "transformer", "sum_unimodal", "shared_head"}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_output_shape(name: str) -> None:
    shape = SHAPES[name]
    encoder = ENCODERS[name](shape, CFG)
    lengths = torch.tensor([6, 3, 1, 2]) if len(shape) == 2 else None
    out = encoder(torch.randn(4, *shape), lengths)
    expected_dim = 5 if name == "identity" else CFG.hidden
    assert encoder.out_dim == expected_dim
    assert out.shape == (4, expected_dim)
    assert torch.isfinite(out).all()


def test_identity_is_a_no_op_without_parameters() -> None:
    encoder = ENCODERS["identity"]((5,), CFG)
    x = torch.randn(3, 5)
    assert torch.equal(encoder(x), x)
    assert list(encoder.parameters()) == []


def test_cnn_accepts_single_channel_images() -> None:
    encoder = ENCODERS["cnn"]((8, 8), CFG)
    assert encoder(torch.randn(2, 8, 8)).shape == (2, CFG.hidden)


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_sequence_encoders_ignore_padding(name: str) -> None:
    encoder = ENCODERS[name]((6, 3), CFG).eval()
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([3, 6])
    changed = x.clone()
    changed[0, 3:] = 100.0  # padding steps of sample 0
    with torch.no_grad():
        a, b = encoder(x, lengths), encoder(changed, lengths)
        full = encoder(changed, None)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(full[0], a[0])  # without lengths the padding counts


@pytest.mark.parametrize(("name", "shape"), [("gru", (5,)), ("transformer", (5,)), ("cnn", (5,))])
def test_encoder_rejects_wrong_input_rank(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(KnobError, match="encoder"):
        ENCODERS[name](shape, CFG)


@pytest.mark.parametrize("name", ["concat_mlp", "transformer"])
def test_fusion_output_shape(name: str) -> None:
    fusion = FUSIONS[name]({"a": 4, "b": 6, "c": 2}, 3, CFG)
    feats = {"a": torch.randn(5, 4), "b": torch.randn(5, 6), "c": torch.randn(5, 2)}
    assert fusion(feats).shape == (5, 3)


def test_sum_unimodal_fusion_sums() -> None:
    fusion = FUSIONS["sum_unimodal"]({"a": 4, "b": 6}, 3, CFG)
    logits = {"a": torch.ones(2, 3), "b": torch.full((2, 3), 2.0)}
    assert torch.equal(fusion(logits), torch.full((2, 3), 3.0))


def _batch(shapes: dict[str, tuple[int, ...]], n: int = 4) -> Batch:
    return Batch(x={m: torch.randn(n, *s) for m, s in shapes.items()}, y=torch.zeros(n).long())


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("fusion", ["concat_mlp", "transformer"])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_model_shapes(encoder: str, fusion: str, num_classes: int) -> None:
    shape = SHAPES[encoder]
    spec = DataSpec(("a", "b"), {"a": shape, "b": shape}, num_classes)
    cfg = TrainConfig(hidden=8, fusion_hidden=8, encoder=encoder, fusion=fusion)
    model = build_model(cfg, spec, "synib")
    batch = _batch(spec.shapes)
    out_dim = 1 if num_classes == 2 else num_classes
    assert model.out_dim == out_dim and model.modalities == ("a", "b")
    feats = model.encode_all(batch)
    width = 5 if encoder == "identity" else 8
    assert {m: tuple(z.shape) for m, z in feats.items()} == {"a": (4, width), "b": (4, width)}
    assert model.fuse(feats).shape == (4, out_dim)
    assert model.unimodal_logits("a", feats["a"]).shape == (4, out_dim)
    assert to_probs(model(batch)).shape == (4, num_classes)


def test_features_are_layer_normalised_without_parameters() -> None:
    spec = DataSpec(("a", "b"), {"a": (5,), "b": (7,)}, 3)
    model = build_model(TrainConfig(encoder="identity", fusion_hidden=4), spec, "vanilla")
    x = torch.randn(6, 5) * 3 + 2
    z = model.encode("a", x)
    torch.testing.assert_close(z.mean(1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(1, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    assert not any("norm" in k for k in model.state_dict())


def test_ensemble_fuses_by_summing_the_unimodal_heads() -> None:
    spec = DataSpec(("a", "b"), {"a": (5,), "b": (5,)}, 3)
    model = build_model(TrainConfig(hidden=4), spec, "ensemble")
    assert isinstance(model.fusion, SumUnimodalFusion)
    batch = _batch(spec.shapes)
    feats = model.encode_all(batch)
    expected = model.unimodal_logits("a", feats["a"]) + model.unimodal_logits("b", feats["b"])
    torch.testing.assert_close(model(batch), expected)


def test_to_probs_by_hand() -> None:
    binary = to_probs(torch.tensor([[0.0], [math.log(3.0)]]))
    torch.testing.assert_close(binary, torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    multi = to_probs(torch.tensor([[0.0, 0.0, math.log(2.0)]]))
    torch.testing.assert_close(multi, torch.tensor([[0.25, 0.25, 0.5]]))


def test_build_model_errors() -> None:
    spec = DataSpec(("a", "b"), {"a": (5,), "b": (5,)}, 2)
    with pytest.raises(KnobError, match="method"):
        build_model(CFG, spec, "magic")
    with pytest.raises(ValueError, match="modality name"):
        build_model(CFG, DataSpec(("a.b", "c"), {"a.b": (5,), "c": (5,)}, 2), "vanilla")
    with pytest.raises(ValueError, match="num_classes"):
        build_model(CFG, DataSpec(("a", "b"), {"a": (5,), "b": (5,)}, 1), "vanilla")


def test_feature_norm_none_passes_raw_encoder_output() -> None:
    import torch

    from synib_core.backbones import build_model
    from synib_core.config import config_from_knobs
    from synib_core.data import DataSpec

    spec = DataSpec(modalities=("a", "b"), shapes={"a": (5,), "b": (3,)}, num_classes=3)
    torch.manual_seed(0)
    raw = build_model(
        config_from_knobs({"feature_norm": "none", "mask_level": "input", "hidden": 4}),
        spec,
        "vanilla",
    )
    torch.manual_seed(0)
    normed = build_model(config_from_knobs({"hidden": 4}), spec, "vanilla")
    x = torch.randn(6, 5)
    h = raw.encoders["a"](x, None)  # (6, 4)
    assert torch.equal(raw.encode("a", x), h)
    expected = (h - h.mean(-1, keepdim=True)) / torch.sqrt(
        h.var(-1, unbiased=False, keepdim=True) + 1e-5
    )
    assert torch.allclose(normed.encode("a", x), expected, atol=1e-5)
