"""AGM: Shapley mono-modal responses, the modulation coefficients and the gradient scaling
against hand computations."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from objective_testing import SMALL, SPEC, step_context, tiny_batch, tiny_model

from synib_core.backbones import MultimodalModel
from synib_core.config import TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives import Batch, build_objective
from synib_core.objectives.agm import AGM, coefficients, scale_gradient, shapley_responses
from synib_core.objectives.losses import cross_entropy


def features(model: MultimodalModel, batch: Batch) -> tuple[dict, dict]:
    feats = model.encode_all(batch)
    zeros = {m: model.encode(m, torch.zeros_like(batch.x[m])) for m in feats}
    return feats, zeros


def test_two_modalities_match_the_authors_closed_form() -> None:
    config = TrainConfig(**SMALL)
    model, batch = tiny_model(config, "agm"), tiny_batch()
    feats, zeros = features(model, batch)
    phi = shapley_responses(model, feats, zeros)
    f = model.fuse(feats)
    f_no_a = model.fuse({"a": zeros["a"], "b": feats["b"]})
    f_no_b = model.fuse({"a": feats["a"], "b": zeros["b"]})
    assert torch.allclose(phi["a"], 0.5 * (f - f_no_a + f_no_b), atol=1e-6)
    assert torch.allclose(phi["b"], 0.5 * (f - f_no_b + f_no_a), atol=1e-6)


def test_three_modalities_average_marginal_contributions_over_orderings() -> None:
    spec = DataSpec(("a", "b", "c"), {"a": (3,), "b": (4,), "c": (2,)}, num_classes=3)
    model, batch = tiny_model(TrainConfig(**SMALL), "agm", spec), tiny_batch(spec=spec)
    feats, zeros = features(model, batch)
    phi = shapley_responses(model, feats, zeros)

    def value(present: set[str]) -> torch.Tensor:
        if not present:
            return torch.zeros(8, 3)
        return model.fuse({m: feats[m] if m in present else zeros[m] for m in "abc"})

    for m in "abc":  # Shapley value = mean over the 6 orderings of m's marginal contribution
        contributions = []
        for order in itertools.permutations("abc"):
            before = set(order[: order.index(m)])
            contributions.append(value(before | {m}) - value(before))
        assert torch.allclose(phi[m], torch.stack(contributions).mean(0), atol=1e-5), m
    assert torch.allclose(sum(phi.values()), model.fuse(feats), atol=1e-5)  # efficiency


def test_coefficients_by_hand() -> None:
    # r_a = exp(0.6 - 0.2) = e^0.4; r*_a = exp(0) = 1; c_a = exp(1.0 * (1 - e^0.4))
    # r_b = exp(0.2 - 0.6) = e^-0.4; c_b = exp(1.0 * (1 - e^-0.4))
    c = coefficients({"a": 0.2, "b": 0.6}, {"a": 0.0, "b": 0.0}, alpha=1.0)
    assert c["a"] == pytest.approx(math.exp(1 - math.exp(0.4)))
    assert c["b"] == pytest.approx(math.exp(1 - math.exp(-0.4)))
    # running means S_a = 0.5, S_b = 0.3: r* = exp(0.3 - 0.5); the exponent is capped at 10
    c = coefficients({"a": 5.0, "b": 0.0}, {"a": 0.5, "b": 0.3}, alpha=2.0)
    assert c["a"] == pytest.approx(math.exp(2.0 * min(math.exp(-0.2) - math.exp(-5.0), 10)))
    assert c["b"] == pytest.approx(math.exp(2.0 * (math.exp(0.2) - math.exp(5.0))))
    # r*_a = e^3 = 20.1, r_a = e^0 = 1: 19.1 is capped at 10
    assert coefficients({"a": 1.0, "b": 1.0}, {"a": 0.0, "b": 3.0}, 1.0)["a"] == math.exp(10)


def test_scale_gradient_scales_only_the_backward_pass() -> None:
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x.detach())
    (3 * y).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [0.75, 0.75]


def test_loss_and_modulated_gradients_by_hand() -> None:
    config = TrainConfig(**SMALL, agm_alpha=1.0)
    model, batch = tiny_model(config, "agm"), tiny_batch()
    objective = build_objective("agm", config, SPEC)
    assert isinstance(objective, AGM)
    out = objective.loss(model, batch, step_context())
    coeffs = {m: out.logs[f"coeff_{m}"] for m in "ab"}
    objective.backward(out, model)
    got = [p.grad.clone() for p in model.encoders["a"].parameters()]  # type: ignore[union-attr]
    # by hand: L = CE(phi_a + phi_b) + CE(phi_a) + CE(phi_b); the gradient into phi_m is
    # multiplied by c_m before it reaches the encoders
    model.zero_grad(set_to_none=True)
    feats, zeros = features(model, batch)
    phi = shapley_responses(model, feats, zeros)
    loss = cross_entropy(phi["a"] + phi["b"], batch.y) + sum(
        cross_entropy(p, batch.y) for p in phi.values()
    )
    assert out.loss.item() == pytest.approx(loss.item(), rel=1e-6)
    d_phi = torch.autograd.grad(loss, [phi["a"], phi["b"]], retain_graph=True)
    params = list(model.encoders["a"].parameters())
    expected = torch.autograd.grad(
        [phi["a"], phi["b"]], params, grad_outputs=[coeffs["a"] * d_phi[0], coeffs["b"] * d_phi[1]]
    )
    for g, e in zip(got, expected, strict=True):
        assert torch.allclose(g, e, atol=1e-6)
    # the running mean now holds this step's scores and is checkpointed
    state = objective.state_dict()
    assert state["steps"] == 1 and state["running"]["a"] == pytest.approx(out.logs["score_a"])
