"""Baselines: vanilla, ensemble, modality dropout, OGM-GE and MMPareto."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from synib_core.backbones import MultimodalModel, build_model
from synib_core.config import TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives import Batch, StepContext, build_objective
from synib_core.objectives.baselines import drop_modalities
from synib_core.objectives.fills import randn_from
from synib_core.objectives.gradients import encoder_parameters, mgda_two, other_parameters
from synib_core.objectives.losses import cross_entropy
from synib_core.objectives.mmpareto import pareto_combine
from synib_core.objectives.ogm_ge import coefficients, confidence_scores

torch.set_num_threads(1)

SMALL: dict[str, Any] = {"hidden": 8, "fusion_hidden": 8, "encoder_layers": 1}
SPEC = DataSpec(("a", "b"), {"a": (4,), "b": (5,)}, num_classes=3)


def _model(config: TrainConfig, method: str, spec: DataSpec = SPEC) -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(config, spec, method)


def _batch(n: int = 8, seed: int = 1, spec: DataSpec = SPEC) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(n, *spec.shapes[m], generator=g) for m in spec.modalities}
    return Batch(x=x, y=torch.randint(0, spec.num_classes, (n,), generator=g))


def _ctx(seed: int = 2, training: bool = True) -> StepContext:
    return StepContext(
        1, 5, 0, torch.Generator().manual_seed(seed), torch.ones(3) / 3, training=training
    )


def _grad(p: Tensor) -> Tensor:
    assert p.grad is not None
    return p.grad


def test_vanilla_is_ce_plus_weighted_unimodal_ce() -> None:
    config = TrainConfig(**SMALL, w_uni=0.25)
    model, batch = _model(config, "vanilla"), _batch()
    out = build_objective("vanilla", config, SPEC).loss(model, batch, _ctx())
    feats = model.encode_all(batch)
    ce = F.cross_entropy(model.fuse(feats), batch.y)
    uni = torch.stack([F.cross_entropy(model.unimodal_logits(m, feats[m]), batch.y) for m in "ab"])
    uni = uni.sum()
    assert out.loss.item() == pytest.approx((ce + 0.25 * uni).item(), rel=1e-6)
    assert out.logs["uni"] == pytest.approx(float(uni.detach()), rel=1e-6)


def test_binary_cross_entropy_by_hand() -> None:
    # one logit ln 3 -> p(y=1) = 3/4: CE is -ln(3/4) = 0.2876821 for y = 1 and -ln(1/4) for y = 0
    logits = torch.tensor([[math.log(3.0)], [math.log(3.0)]])
    assert cross_entropy(logits, torch.tensor([1, 0])).item() == pytest.approx(
        (0.2876821 + 1.3862944) / 2, abs=1e-6
    )


def test_ensemble_trains_each_modality_alone() -> None:
    config = TrainConfig(**SMALL)
    model, batch = _model(config, "ensemble"), _batch()
    objective = build_objective("ensemble", config, SPEC)
    out = objective.loss(model, batch, _ctx())
    feats = model.encode_all(batch)
    uni_logits = {m: model.unimodal_logits(m, feats[m]) for m in "ab"}
    assert torch.allclose(out.logits, uni_logits["a"] + uni_logits["b"], atol=1e-6)
    expected = torch.stack([F.cross_entropy(uni_logits[m], batch.y) for m in "ab"]).sum()
    assert out.loss.item() == pytest.approx(float(expected.detach()), rel=1e-6)
    objective.backward(out, model)
    grad_a = [p.grad.clone() for p in encoder_parameters(model)["a"] if p.grad is not None]
    model.zero_grad()
    other = Batch(x={"a": batch.x["a"], "b": batch.x["b"] * 3 + 1}, y=batch.y)
    objective.backward(objective.loss(model, other, _ctx()), model)
    again = [p.grad for p in encoder_parameters(model)["a"] if p.grad is not None]
    assert all(torch.equal(u, v) for u, v in zip(grad_a, again, strict=True))


def test_drop_modalities_never_drops_all_and_zeroes_features() -> None:
    feats = {m: torch.randn(500, 4) + 5 for m in "abc"}
    dropped, keep = drop_modalities(feats, 0.9, torch.Generator().manual_seed(0))
    assert keep.shape == (500, 3) and keep.any(dim=1).all()
    for k, m in enumerate("abc"):
        assert torch.equal(dropped[m][~keep[:, k]], torch.zeros_like(dropped[m][~keep[:, k]]))
        assert torch.equal(dropped[m][keep[:, k]], feats[m][keep[:, k]])
    # P(drop) = 0.9 each, rescued rows keep one: expected kept share 0.1 + 0.9^3 / 3 = 0.343
    assert keep.float().mean().item() == pytest.approx(0.343, abs=0.03)
    _, keep_half = drop_modalities(feats, 0.3, torch.Generator().manual_seed(1))
    assert 1 - keep_half.float().mean().item() == pytest.approx(0.3 - 0.3**3 / 3, abs=0.03)


def test_modality_dropout_with_zero_probability_and_in_evaluation_is_vanilla() -> None:
    batch = _batch()
    for prob, training in ((0.0, True), (0.5, False)):
        config = TrainConfig(**SMALL, modality_dropout_prob=prob, w_uni=0.1)
        model = _model(config, "modality_dropout")
        out = build_objective("modality_dropout", config, SPEC).loss(
            model, batch, _ctx(training=training)
        )
        vanilla = build_objective("vanilla", config, SPEC).loss(model, batch, _ctx())
        assert torch.equal(out.loss, vanilla.loss)


# ---------------------------------------------------------------- OGM-GE


def test_ogm_coefficients_by_hand() -> None:
    # rho_a = 3 / 1 = 3 > 1: c_a = 1 - tanh(0.5 * 3) = 1 - 0.9051483 = 0.0948517; rho_b = 1/3: c_b = 1
    two = coefficients({"a": 3.0, "b": 1.0}, alpha=0.5)
    assert two["a"] == pytest.approx(0.0948517, abs=1e-6) and two["b"] == 1.0
    # M = 3: rho_a = 4 / mean(1, 3) = 2: c_a = 1 - tanh(1) = 0.2384058; rho_c = 3 / 2.5 = 1.2
    three = coefficients({"a": 4.0, "b": 1.0, "c": 3.0}, alpha=0.5)
    assert three["a"] == pytest.approx(0.2384058, abs=1e-6)
    assert three["b"] == 1.0
    assert three["c"] == pytest.approx(1 - math.tanh(0.6), abs=1e-9)


def _dominated_by_a(config: TrainConfig) -> tuple[MultimodalModel, Batch]:
    """A model briefly trained on data where only modality a carries the label."""
    model = _model(config, "ogm_ge")
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 3, (48,), generator=g)
    xa = torch.randn(48, 4, generator=g)
    xa[:, :3] += 3 * F.one_hot(y, 3).float()
    batch = Batch(x={"a": xa, "b": torch.randn(48, 5, generator=g)}, y=y)
    vanilla = build_objective("vanilla", config, SPEC)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        opt.zero_grad()
        vanilla.backward(vanilla.loss(model, batch, _ctx()), model)
        opt.step()
    return model, batch


def test_ogm_ge_scales_the_dominant_encoder_gradient_down() -> None:
    config = TrainConfig(**SMALL, ogm_alpha=0.5)
    model, batch = _dominated_by_a(config)
    scores = confidence_scores(model, model.encode_all(batch), batch.y)
    assert scores["a"] > 2 * scores["b"]
    vanilla = build_objective("vanilla", config, SPEC)
    model.zero_grad()
    vanilla.backward(vanilla.loss(model, batch, _ctx()), model)
    plain = {m: [_grad(p).clone() for p in ps] for m, ps in encoder_parameters(model).items()}
    model.zero_grad()
    ogm = build_objective("ogm_ge", config, SPEC)
    out = ogm.loss(model, batch, _ctx(seed=9))
    assert out.logs["coeff_a"] < 1.0 and out.logs["coeff_b"] == 1.0
    ogm.backward(out, model)
    noise_rng = torch.Generator().manual_seed(9)  # the same stream, same order as backward
    for m, ps in encoder_parameters(model).items():
        coeff = out.logs[f"coeff_{m}"]
        for p, g in zip(ps, plain[m], strict=True):
            noise = randn_from(tuple(g.shape), noise_rng, g.device) * g.std()
            assert torch.allclose(_grad(p), coeff * g + noise, atol=1e-6)
            if m == "a":
                assert (_grad(p) - noise).norm() < 0.5 * g.norm()
    fusion = [_grad(p) for p in model.fusion.parameters()]
    model.zero_grad()
    vanilla.backward(vanilla.loss(model, batch, _ctx()), model)
    assert all(
        torch.equal(u, _grad(p)) for u, p in zip(fusion, model.fusion.parameters(), strict=True)
    )


# ---------------------------------------------------------------- MMPareto


def test_mgda_two_closed_form() -> None:
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])
    # gamma = ((g2 - g1) . g2) / ||g1 - g2||^2 = (0.75 + 1) / (2.25 + 1) = 7 / 13
    gamma = mgda_two(g1, g2)
    assert gamma == pytest.approx(7 / 13, abs=1e-9)
    point = gamma * g1 + (1 - gamma) * g2  # [4/13, 6/13], orthogonal to g1 - g2
    assert point.tolist() == pytest.approx([4 / 13, 6 / 13], abs=1e-6)
    assert float(point @ (g1 - g2)) == pytest.approx(0.0, abs=1e-6)
    assert mgda_two(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == 1.0  # clipped
    assert mgda_two(g1, g1) == 0.5


def test_pareto_combine_conflict_and_agreement() -> None:
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])
    combined, gamma, cos = pareto_combine(g1, g2)
    assert cos < 0 and gamma == pytest.approx(7 / 13)
    # direction 2 * [4/13, 6/13] (norm 1.1094) is shorter than g1 + g2 = [0.5, 1] (norm 1.1180):
    # rescaled to that norm
    direction = torch.tensor([8 / 13, 12 / 13])
    expected = direction / direction.norm() * math.sqrt(1.25)
    assert torch.allclose(combined, expected, atol=1e-6)
    same, gamma_same, cos_same = pareto_combine(g1, torch.tensor([1.0, 1.0]))
    assert cos_same > 0 and gamma_same == 0.5 and same.tolist() == [2.0, 1.0]


def test_mmpareto_backward_combines_per_encoder() -> None:
    config = TrainConfig(**SMALL)
    model, batch = _model(config, "mmpareto"), _batch(n=16)
    objective = build_objective("mmpareto", config, SPEC)
    out = objective.loss(model, batch, _ctx())
    ce, uni = out.aux["ce"], out.aux["uni"]
    assert out.loss.item() == pytest.approx((ce + uni).item())
    encoders, heads = encoder_parameters(model), other_parameters(model)
    expected: dict[int, Tensor] = {}
    for ps in encoders.values():
        g_mm = torch.cat([g.reshape(-1) for g in torch.autograd.grad(ce, ps, retain_graph=True)])
        g_uni = torch.cat([g.reshape(-1) for g in torch.autograd.grad(uni, ps, retain_graph=True)])
        combined, _, _ = pareto_combine(g_mm, g_uni)
        for p, v in zip(ps, combined.split([p.numel() for p in ps]), strict=True):
            expected[id(p)] = v.view_as(p)
    for p in heads:
        parts = torch.autograd.grad(ce + uni, [p], retain_graph=True, allow_unused=True)
        expected[id(p)] = torch.zeros_like(p) if parts[0] is None else parts[0]
    objective.backward(out, model)
    for p in model.parameters():
        assert torch.allclose(_grad(p), expected[id(p)], atol=1e-6)
    assert {"cos_a", "gamma_a", "cos_b", "gamma_b"} <= set(out.logs)


class ToyScaler:
    def __init__(self) -> None:
        self.calls = 0

    def scale(self, loss: Tensor) -> Tensor:
        self.calls += 1
        return loss * 2


def test_backward_goes_through_the_scaler() -> None:
    config = TrainConfig(**SMALL)
    for method, calls in (("vanilla", 1), ("mmpareto", 2), ("ogm_ge", 1)):
        model, scaler = _model(config, method), ToyScaler()
        objective = build_objective(method, config, SPEC)
        objective.backward(objective.loss(model, _batch(), _ctx()), model, scaler)
        assert scaler.calls == calls
