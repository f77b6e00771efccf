"""MCR: the Jensen-Shannon divergence by hand; the competition regulariser trains the encoders
only, each towards its own importance and against the other's."""

from __future__ import annotations

import math

import pytest
import torch
from objective_testing import SMALL, SPEC, step_context, tiny_batch, tiny_model

from synib_core.config import TrainConfig
from synib_core.objectives import build_objective
from synib_core.objectives.fills import swap_permutation
from synib_core.objectives.mcr import jensen_shannon


def test_jensen_shannon_by_hand() -> None:
    # p = (1/2, 1/2), q = (0.9, 0.1), m = (0.7, 0.3)
    p, q = torch.tensor([[0.0, 0.0]]), torch.log(torch.tensor([[0.9, 0.1]]))
    kl_p = 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)
    kl_q = 0.9 * math.log(0.9 / 0.7) + 0.1 * math.log(0.1 / 0.3)
    assert jensen_shannon(p, q).item() == pytest.approx((kl_p + kl_q) / 2, rel=1e-5)
    # one binary logit z is the pair of logits (0, z)
    z = torch.tensor([[1.3], [-0.4]])
    assert jensen_shannon(z, -z).item() == pytest.approx(
        jensen_shannon(torch.cat([0 * z, z], 1), torch.cat([0 * z, -z], 1)).item(), rel=1e-6
    )


def grads_of(lam: float) -> dict[str, torch.Tensor]:
    config = TrainConfig(**SMALL, mcr_lambda=lam)
    model, batch = tiny_model(config, "mcr"), tiny_batch()
    objective = build_objective("mcr", config, SPEC)
    objective.backward(objective.loss(model, batch, step_context(seed=5)), model)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_regulariser_routes_each_term_to_its_player() -> None:
    with_reg, without = grads_of(1.0), grads_of(0.0)
    reg = {n: with_reg[n] - without[n] for n in with_reg}
    for n, g in reg.items():
        if not n.startswith("encoders."):
            assert torch.allclose(g, torch.zeros_like(g), atol=1e-6), n  # fusion and heads: 0
    # by hand with plain autograd: encoder a gets -d/d(theta_a) of JSD(f(pi z_a, z_b), f(z))
    # through pi z_a, and +d/d(theta_a) of JSD(f(z_a, pi z_b), f(z)) through z_a
    config = TrainConfig(**SMALL)
    model, batch = tiny_model(config, "mcr"), tiny_batch()
    perm = swap_permutation(8, torch.Generator().manual_seed(5), torch.device("cpu"))
    feats = model.encode_all(batch)
    intact = model.fuse({m: z.detach() for m, z in feats.items()}).detach()
    za, zb = feats["a"], feats["b"].detach()
    own = jensen_shannon(model.fuse({"a": za[perm], "b": zb}), intact)
    other = jensen_shannon(model.fuse({"a": za, "b": zb[perm]}), intact)
    params = list(model.encoders["a"].parameters())
    expected = torch.autograd.grad(other - own, params)
    names = [n for n, _ in model.named_parameters() if n.startswith("encoders.a.")]
    for name, g in zip(names, expected, strict=True):
        assert torch.allclose(reg[name], g, atol=1e-6), name
    assert any(g.abs().sum() > 0 for g in expected)


def test_zero_weight_and_evaluation_are_the_vanilla_loss() -> None:
    config = TrainConfig(**SMALL, w_uni=0.2)
    model, batch = tiny_model(config, "mcr"), tiny_batch()
    vanilla = build_objective("vanilla", config, SPEC).loss(model, batch, step_context())
    for lam, training in ((0.0, True), (0.5, False)):
        cfg = TrainConfig(**SMALL, w_uni=0.2, mcr_lambda=lam)
        out = build_objective("mcr", cfg, SPEC).loss(model, batch, step_context(training=training))
        assert torch.equal(out.loss, vanilla.loss)
