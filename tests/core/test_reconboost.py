"""ReconBoost: the stage schedule and the boosting loss against hand computations; only the
active learner trains."""

from __future__ import annotations

import math

import pytest
import torch
from objective_testing import SMALL, SPEC, gradients, step_context, tiny_batch, tiny_model

from synib_core.config import TrainConfig
from synib_core.objectives import build_objective
from synib_core.objectives.reconboost import boosting_loss, stage_of_epoch


def test_schedule_alternates_stages_and_rectification() -> None:
    plan = [stage_of_epoch(e, ("a", "b"), stage_epochs=2, rectify_epochs=1) for e in range(1, 9)]
    assert plan == ["a", "a", None, "b", "b", None, "a", "a"]
    plan = [
        stage_of_epoch(e, ("a", "b", "c"), stage_epochs=1, rectify_epochs=0) for e in (1, 2, 3, 4)
    ]
    assert plan == ["a", "b", "c", "a"]


def test_boosting_loss_by_hand() -> None:
    # sample 0: y = 0, own logits (ln 3, 0, 0): p_own(y) = 3/5, CE = ln(5/3); the others' logits
    # (0, 0, 0): p_-m(y) = 1/3, weight 5 - 1/3. Sample 1: y = 2, own logits 0: CE = ln 3;
    # others (0, 0, ln 2): p_-m(y) = 2/4, weight 5 - 1/2. Loss = mean / K, K = 3.
    own = torch.tensor([[math.log(3.0), 0.0, 0.0], [0.0, 0.0, 0.0]])
    others = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)]])
    y = torch.tensor([0, 2])
    expected = ((5 - 1 / 3) * math.log(5 / 3) + (5 - 1 / 2) * math.log(3.0)) / 2 / 3
    value = boosting_loss(own, others, y, w1=5.0, w2=1.0, num_classes=3)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_binary_boosting_loss_uses_the_sigmoid() -> None:
    # one logit 0: p(y) = 1/2 for both learners; CE = ln 2; weight 2 - 1 * 1/2; K = 2
    value = boosting_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([1]), w1=2.0, w2=1.0,
                          num_classes=2)  # fmt: skip
    assert value.item() == pytest.approx(1.5 * math.log(2.0) / 2, rel=1e-6)


def test_a_stage_trains_only_its_learner_and_rectification_trains_all() -> None:
    config = TrainConfig(**SMALL, reconboost_stage_epochs=1, reconboost_rectify_epochs=1)
    model, batch = tiny_model(config, "reconboost"), tiny_batch()
    objective = build_objective("reconboost", config, SPEC)
    out = objective.loss(model, batch, step_context(epoch=3))  # epoch 3: modality b's stage
    feats = model.encode_all(batch)
    heads = {m: model.unimodal_logits(m, feats[m]) for m in "ab"}
    expected = boosting_loss(heads["b"], heads["a"], batch.y, w1=5.0, w2=1.0, num_classes=3)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    objective.backward(out, model)
    assert gradients(model, "encoders.b") and gradients(model, "heads.b")
    assert not gradients(model, "encoders.a") and not gradients(model, "heads.a")
    model.zero_grad(set_to_none=True)
    rectify = objective.loss(model, batch, step_context(epoch=2))
    fused = model.fuse(model.encode_all(batch))
    assert torch.allclose(fused, heads["a"] + heads["b"], atol=1e-6)  # the sum of the learners
    assert rectify.loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(fused, batch.y).item(), rel=1e-6
    )
    objective.backward(rectify, model)
    assert all(gradients(model, f"encoders.{m}") for m in "ab")


def test_w2_above_w1_is_refused() -> None:
    with pytest.raises(ValueError, match="reconboost_others_weight"):
        build_objective(
            "reconboost", TrainConfig(reconboost_own_weight=1.0, reconboost_others_weight=2.0), SPEC
        )
