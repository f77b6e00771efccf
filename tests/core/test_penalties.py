"""SynIB penalties against hand-computed values, finiteness on extreme logits, and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from synib_core.objectives.penalties import (
    PENALTIES,
    anchor,
    evaluate_penalty,
    kl_prior,
    kl_uniform,
    logit_l2,
)

torch.set_num_threads(1)

LN3 = math.log(3.0)
# q = [1/4, 3/4]: KL(q || [1/2, 1/2]) = 1/4 ln(1/2) + 3/4 ln(3/2)
#   = 0.25 * -0.6931472 + 0.75 * 0.4054651 = 0.1308120
KL_Q_UNIFORM = 0.1308120
# KL([1/4, 3/4] || [3/4, 1/4]) = 1/4 ln(1/3) + 3/4 ln 3 = 1/2 ln 3 = 0.5493061
HALF_LN3 = 0.5493061


def test_registry_names() -> None:
    assert set(PENALTIES) == {"kl_uniform", "kl_prior", "anchor", "logit_l2"}
    with pytest.raises(ValueError, match="allowed: kl_uniform"):
        evaluate_penalty("entropy", torch.zeros(1, 2))


def test_kl_uniform_two_classes_by_hand() -> None:
    values = kl_uniform(torch.tensor([[0.0, LN3], [0.0, 0.0]]))
    assert values.shape == (2,)
    assert values[0].item() == pytest.approx(KL_Q_UNIFORM, abs=1e-6)
    assert values[1].item() == pytest.approx(0.0, abs=1e-7)


def test_kl_uniform_three_classes_by_hand() -> None:
    # logits [0, 0, ln 2] -> q = [1/4, 1/4, 1/2]; KL = 2 * 1/4 ln(3/4) + 1/2 ln(3/2)
    #   = 0.5 * -0.2876821 + 0.5 * 0.4054651 = 0.0588915
    value = kl_uniform(torch.tensor([[0.0, 0.0, math.log(2.0)]]))
    assert value.item() == pytest.approx(0.0588915, abs=1e-6)


def test_kl_uniform_binary_is_bernoulli_kl_to_half() -> None:
    # sigmoid(ln 3) = 3/4: the same distribution as above
    values = kl_uniform(torch.tensor([[LN3], [-LN3], [0.0]]))
    assert values.tolist() == pytest.approx([KL_Q_UNIFORM, KL_Q_UNIFORM, 0.0], abs=1e-6)


def test_kl_uniform_equals_log_k_minus_entropy() -> None:
    logits = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    q = torch.softmax(logits.double(), dim=1)
    reference = math.log(5) + (q * q.log()).sum(dim=1)
    assert torch.allclose(kl_uniform(logits).double(), reference, atol=1e-6)


def test_kl_prior_by_hand() -> None:
    prior = torch.tensor([0.75, 0.25])
    multi = kl_prior(torch.tensor([[0.0, LN3]]), prior=prior)
    binary = kl_prior(torch.tensor([[LN3]]), prior=prior)  # p(y=1) = 3/4 vs prior 1/4
    assert multi.item() == pytest.approx(HALF_LN3, abs=1e-6)
    assert binary.item() == pytest.approx(HALF_LN3, abs=1e-6)
    # with a uniform prior it is kl_uniform
    uniform = kl_prior(torch.tensor([[0.0, LN3]]), prior=torch.tensor([0.5, 0.5]))
    assert uniform.item() == pytest.approx(KL_Q_UNIFORM, abs=1e-6)


def test_kl_prior_needs_a_matching_prior() -> None:
    with pytest.raises(ValueError, match="prior"):
        kl_prior(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="prior"):
        kl_prior(torch.zeros(2, 3), prior=torch.ones(2) / 2)
    # a class absent from the training split stays finite
    assert torch.isfinite(
        kl_prior(torch.tensor([[5.0, 0.0]]), prior=torch.tensor([0.0, 1.0]))
    ).all()


def test_anchor_by_hand_and_averaged() -> None:
    q_logits = torch.tensor([[0.0, LN3]], requires_grad=True)  # q = [1/4, 3/4]
    a1 = torch.tensor([[LN3, 0.0]], requires_grad=True)  # p = [3/4, 1/4]: KL(p || q) = 1/2 ln 3
    a2 = torch.tensor([[0.0, LN3]])  # p = q: KL = 0
    one = anchor(q_logits, anchors=[a1])
    two = anchor(q_logits, anchors=[a1, a2])
    assert one.item() == pytest.approx(HALF_LN3, abs=1e-6)
    assert two.item() == pytest.approx(HALF_LN3 / 2, abs=1e-6)
    two.sum().backward()
    assert a1.grad is None  # the anchor is detached
    assert q_logits.grad is not None and q_logits.grad.abs().sum() > 0
    binary = anchor(torch.tensor([[LN3]]), anchors=[torch.tensor([[-LN3]])])
    assert binary.item() == pytest.approx(HALF_LN3, abs=1e-6)
    with pytest.raises(ValueError, match="anchors"):
        anchor(q_logits)


def test_logit_l2_by_hand() -> None:
    values = logit_l2(torch.tensor([[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]]))
    assert values.tolist() == pytest.approx([12.5, 2.5, 0.0])
    assert logit_l2(torch.tensor([[2.0]])).item() == pytest.approx(2.0)
    result = evaluate_penalty("logit_l2", torch.tensor([[3.0, 4.0], [1.0, 2.0]]))
    assert result.mean.item() == pytest.approx(7.5)
    assert result.per_sample.tolist() == pytest.approx([12.5, 2.5])


EXTREME = [
    [1e30, -1e30],
    [3e38, -3e38],
    [float("inf"), float("-inf")],
    [-1e4, 1e4],
    [0.0, 0.0],
]


@pytest.mark.parametrize("name", sorted(PENALTIES))
@pytest.mark.parametrize("width", [1, 2])
def test_finite_on_extreme_logits(name: str, width: int) -> None:
    logits = torch.tensor([row[:width] for row in EXTREME], requires_grad=True)
    anchors = [torch.tensor([row[:width][::-1] for row in EXTREME])]
    prior = torch.tensor([0.9, 0.1])
    values = PENALTIES[name](logits, prior=prior, anchors=anchors)
    assert values.shape == (len(EXTREME),)
    assert values.dtype == torch.float32
    assert torch.isfinite(values).all()
    values.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_half_precision_logits_are_computed_in_float32(name: str) -> None:
    logits = torch.tensor([[0.0, LN3]]).to(torch.bfloat16)
    value = PENALTIES[name](logits, prior=torch.tensor([0.5, 0.5]), anchors=[logits * 0])
    assert value.dtype == torch.float32


def test_non_matrix_logits_are_rejected() -> None:
    with pytest.raises(ValueError, match="logits"):
        kl_uniform(torch.zeros(3))
