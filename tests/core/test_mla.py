"""MLA: the shared head's entropy-weighted fusion, the projector update and the projected head
gradient against hand computations; one update per modality and batch."""

from __future__ import annotations

import math

import pytest
import torch
from objective_testing import SMALL, SPEC, gradients, step_context, tiny_batch, tiny_model

from synib_core.backbones.fusions import FusionConfig, SharedHeadFusion
from synib_core.config import KnobError, TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives import build_objective
from synib_core.objectives.mla import shared_head, update_projector


def test_projector_update_by_hand() -> None:
    # P = I, r = e1: k = e1, r k = 1; I - e1 e1^T / 1.1 = diag(1/11, 1); its norm sqrt(1/121 + 1)
    p = update_projector(torch.eye(2), torch.tensor([[1.0, 0.0]]), alpha=0.1)
    norm = math.sqrt(1 / 121 + 1)
    assert torch.allclose(p, torch.tensor([[1 / 11 / norm, 0.0], [0.0, 1 / norm]]), atol=1e-6)


def test_shared_head_fuses_by_entropy() -> None:
    fusion = SharedHeadFusion(FusionConfig({"a": 2, "b": 2}, out_dim=3))
    with torch.no_grad():
        fusion.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        fusion.head.bias.zero_()
    za, zb = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])  # logits (2,0,0), (0,0,0)
    assert torch.equal(fusion({"a": za}), torch.tensor([[2.0, 0.0, 0.0]]))  # one modality
    p_a = torch.softmax(torch.tensor([2.0, 0.0, 0.0]), 0)
    h_a, h_b = float(-(p_a * p_a.log()).sum()), math.log(3.0)
    w_a = math.exp(-h_a) / (math.exp(-h_a) + math.exp(-h_b))  # = exp(max H - H_a) / sum
    fused = fusion({"a": za, "b": zb})
    assert torch.allclose(fused, torch.tensor([[2.0 * w_a, 0.0, 0.0]]), atol=1e-6)


def test_each_update_trains_one_encoder_and_projects_the_head_gradient() -> None:
    config = TrainConfig(**SMALL)
    model, batch = tiny_model(config, "mla"), tiny_batch()
    objective = build_objective("mla", config, SPEC)
    assert objective.updates_per_batch == 2
    # substep 1 of the second batch (step 3): modality b; previous modality a
    out = objective.loss(model, batch, step_context(step=3, substep=1))
    objective.backward(out, model)
    assert gradients(model, "encoders.b") and not gradients(model, "encoders.a")
    got = shared_head(model).weight.grad
    assert got is not None
    # by hand: the raw gradient of CE(h(z_b), y) times P^T, P from I and the mean z_a
    model.zero_grad(set_to_none=True)
    head = shared_head(model)
    ce = torch.nn.functional.cross_entropy(head(model.encode("b", batch.x["b"])), batch.y)
    (raw,) = torch.autograd.grad(ce, [head.weight])
    r = model.encode("a", batch.x["a"]).detach().mean(0, keepdim=True)
    assert torch.allclose(got, raw @ update_projector(torch.eye(8), r).T, atol=1e-6)


def test_first_batch_is_not_projected_and_widths_must_match() -> None:
    config = TrainConfig(**SMALL)
    model, batch = tiny_model(config, "mla"), tiny_batch()
    objective = build_objective("mla", config, SPEC)
    objective.backward(objective.loss(model, batch, step_context(step=1, substep=1)), model)
    head = shared_head(model)
    got = head.weight.grad.clone()  # type: ignore[union-attr]
    model.zero_grad(set_to_none=True)
    ce = torch.nn.functional.cross_entropy(head(model.encode("b", batch.x["b"])), batch.y)
    assert torch.allclose(got, torch.autograd.grad(ce, [head.weight])[0], atol=1e-7)
    assert objective.state_dict() == {}
    spec = DataSpec(("a", "b"), {"a": (4,), "b": (5,)}, num_classes=3)
    with pytest.raises(KnobError, match="encoder"):
        tiny_model(TrainConfig(encoder="identity", feature_norm="none"), "mla", spec)
