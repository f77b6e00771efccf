"""PMR: prototypes, prototype logits and the slower modality's prototype CE against hand
computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from objective_testing import SMALL, SPEC, step_context, tiny_batch, tiny_model

from synib_core.config import TrainConfig
from synib_core.objectives import build_objective
from synib_core.objectives.pmr import PMR, class_means, prototype_logits, slow_modalities


def test_class_means_and_prototype_logits_by_hand() -> None:
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    means = class_means(feats, torch.tensor([0, 0, 2]), 3)
    assert means.tolist() == [[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]]  # class 1 absent: 0
    # distances of (0, 0) to (3, 4) and (0, 1): 5 and 1
    logits = prototype_logits(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    assert logits.tolist() == [[-5.0, -1.0]]


def test_the_lower_score_is_the_slow_modality() -> None:
    assert slow_modalities({"a": 3.0, "b": 5.0}) == ["a"]
    assert slow_modalities({"a": 4.0, "b": 4.0}) == []
    assert slow_modalities({"a": 1.0, "b": 3.0, "c": 6.0}) == ["a", "b"]  # 3 < (1 + 6) / 2


def test_loss_adds_the_slow_modality_prototype_ce() -> None:
    config = TrainConfig(**SMALL, pmr_alpha=0.7, pmr_momentum=0.25)
    model, train = tiny_model(config, "pmr"), tiny_batch(16, seed=3)
    objective = build_objective("pmr", config, SPEC)
    assert isinstance(objective, PMR)
    batch = tiny_batch()
    plain = objective.loss(model, batch, step_context())  # no prototypes yet: the fused CE
    fused = model.fuse(model.encode_all(batch))
    assert plain.loss.item() == pytest.approx(F.cross_entropy(fused, batch.y).item(), rel=1e-6)
    objective.begin_epoch(model, 1, train, train)
    with torch.no_grad():
        model.eval()
        feats = model.encode_all(train)
        model.train()
    protos = {m: class_means(z, train.y, 3) for m, z in feats.items()}
    assert all(torch.allclose(objective.prototypes[m], protos[m], atol=1e-6) for m in "ab")
    out = objective.loss(model, batch, step_context())
    z = model.encode_all(batch)
    proto_logits = {m: prototype_logits(z[m], protos[m]) for m in "ab"}
    scores = {m: torch.softmax(p, 1).gather(1, batch.y[:, None]).sum().item()
              for m, p in proto_logits.items()}  # fmt: skip
    slow = min(scores, key=scores.__getitem__)
    expected = F.cross_entropy(fused, batch.y) + 0.7 * F.cross_entropy(proto_logits[slow], batch.y)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert f"pce_{slow}" in out.logs and len([k for k in out.logs if k.startswith("pce_")]) == 1
    # the next epoch mixes in the old prototypes with momentum 0.25
    with torch.no_grad():
        for p in model.encoders.parameters():
            p.mul_(1.5)
    objective.begin_epoch(model, 2, train, train)
    with torch.no_grad():
        model.eval()
        fresh = class_means(model.encode_all(train)["a"], train.y, 3)
    assert torch.allclose(objective.prototypes["a"], 0.75 * fresh + 0.25 * protos["a"], atol=1e-6)
