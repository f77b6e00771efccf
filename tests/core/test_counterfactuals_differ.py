"""Counterfactuals really differ: for every mask, fill and level, the counterfactual values (the
raw input at ``mask_level="input"``, the encoder feature at ``"feature"``) differ from the clean
ones wherever the mask is on and equal them wherever it is off, and every mask corrupts
something. (A mask that never corrupts anything makes the penalty a plain confidence penalty on
intact inputs, silently.)"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import Tensor

from synib_core.backbones import build_model
from synib_core.config import TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives.base import Batch, StepContext
from synib_core.objectives.counterfactual import CounterfactualBuilder
from synib_core.objectives.masks import MaskRequest

torch.set_num_threads(1)

SPEC = DataSpec(("a", "b"), {"a": (6,), "b": (5,)}, num_classes=3)
ORACLE = {"a": torch.tensor([0, 2, 3]), "b": torch.tensor([1, 4])}


class RecordingMask:
    """Wraps a mask; records each request's values and the corruption weights it returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, Tensor, Tensor]] = []

    def corruption(self, request: MaskRequest) -> Tensor:
        weights = self.inner.corruption(request)
        self.calls.append((request.modality, request.values.detach().clone(), weights.detach()))
        return weights


class InputSpy:
    """The model, recording the raw inputs of every ``encode`` call."""

    def __init__(self, model: Any) -> None:
        self.inner = model
        self.modalities, self.num_classes = model.modalities, model.num_classes
        self.out_dim = model.out_dim
        self.encoded: list[tuple[str, Tensor]] = []

    def encode(self, m: str, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self.encoded.append((m, x.detach().clone()))
        return self.inner.encode(m, x, lengths)

    def encode_all(self, batch: Batch) -> dict[str, Tensor]:
        return {m: self.inner.encode(m, batch.x[m]) for m in self.modalities}

    def fuse(self, feats: dict[str, Tensor]) -> Tensor:
        return self.inner.fuse(feats)

    def unimodal_logits(self, m: str, z: Tensor) -> Tensor:
        return self.inner.unimodal_logits(m, z)


def _config(mask: str, fill: str, level: str) -> TrainConfig:
    knobs: dict[str, Any] = {"hidden": 8, "fusion_hidden": 8, "encoder_layers": 1}
    knobs.update(mask=mask, fill=fill, mask_level=level, w_uni=1.0, mask_steps=5)
    if mask == "oracle" and level == "feature":
        knobs["encoder"] = "identity"  # oracle coordinates index the input = the feature here
    return TrainConfig(**knobs)


COMBOS = list(
    itertools.product(
        ("random", "full", "oracle", "learned"),
        ("swap", "noise", "zeros", "ema"),
        ("feature", "input"),
    )
)


@pytest.mark.parametrize(("mask", "fill", "level"), COMBOS)
def test_counterfactual_differs_exactly_where_the_mask_is_on(
    mask: str, fill: str, level: str
) -> None:
    config = _config(mask, fill, level)
    torch.manual_seed(0)
    model = InputSpy(build_model(config, SPEC, "synib"))
    gen = torch.Generator().manual_seed(1)
    x = {m: torch.randn(16, *SPEC.shapes[m], generator=gen) for m in SPEC.modalities}
    batch = Batch(x=x, y=torch.randint(0, 3, (16,), generator=gen))
    ctx = StepContext(1, 1, 0, torch.Generator().manual_seed(2), torch.ones(3) / 3, ORACLE)
    builder = CounterfactualBuilder.from_config(config)
    recorder = RecordingMask(builder.mask)
    builder.mask = recorder
    feats = model.encode_all(batch)
    cf = builder.features(model, batch, feats, ctx)
    assert [m for m, _, _ in recorder.calls] == list(SPEC.modalities)
    for m, values, weights in recorder.calls:
        # the counterfactual values the mask acted on: the input of m's last encoder rerun (the
        # learned gate's inner steps rerun it too, before), or the feature
        if level == "input":
            after = [x for name, x in model.encoded if name == m][-1].reshape(values.shape)
        else:
            after = cf[m]
        on = weights > 0
        assert on.any(), f"{mask}/{fill}/{level}: the mask corrupted nothing in {m}"
        assert torch.equal(after[~on], values[~on])  # off: untouched, bit for bit
        assert (after[on] != values[on]).all()  # on: changed, every element
        if level == "input":  # and the encoder saw it: the counterfactual feature moved
            assert not torch.equal(cf[m], feats[m])


def test_every_mask_corrupts_about_the_expected_share() -> None:
    """Random 0.5 corrupts about half, full everything, oracle exactly its coordinates."""
    shares = {}
    for mask in ("random", "full", "oracle"):
        config = _config(mask, "swap", "input")
        torch.manual_seed(0)
        model = build_model(config, SPEC, "synib")
        x = {m: torch.randn(400, *SPEC.shapes[m]) for m in SPEC.modalities}
        batch = Batch(x=x, y=torch.zeros(400, dtype=torch.long))
        ctx = StepContext(1, 1, 0, torch.Generator().manual_seed(3), torch.ones(3) / 3, ORACLE)
        builder = CounterfactualBuilder.from_config(config)
        recorder = RecordingMask(builder.mask)
        builder.mask = recorder
        builder.features(model, batch, model.encode_all(batch), ctx)
        shares[mask] = {m: float((w > 0).float().mean()) for m, _, w in recorder.calls}
    assert all(abs(s - 0.5) < 0.05 for s in shares["random"].values())
    assert shares["full"] == {"a": 1.0, "b": 1.0}
    assert shares["oracle"] == pytest.approx({"a": 3 / 6, "b": 2 / 5})
