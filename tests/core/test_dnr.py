"""D&R: purity, re-initialisation strength and the soft re-initialisation against hand
computations; the diagnosis runs only every dnr_every epochs and touches encoders only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from objective_testing import SMALL, SPEC, step_context, tiny_batch, tiny_model

from synib_core.config import TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives import Batch, build_objective
from synib_core.objectives.dnr import DiagnoseRelearn, purity, relearn_strength, soft_reinit_


def test_purity_by_hand() -> None:
    # cluster 5 holds labels 0, 0, 1 (majority 0: two hits), cluster 7 holds 1 (one hit)
    assert purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7])) == 0.75
    assert purity(np.array([1, 0, 1, 0]), np.array([0, 0, 1, 1])) == 0.5


def test_strength_and_soft_reinit_by_hand() -> None:
    assert relearn_strength(0.9, 0.7, 3.0) == pytest.approx(math.tanh(0.6))
    p = torch.nn.Parameter(torch.tensor([2.0, -4.0]))
    soft_reinit_([p], [torch.tensor([0.0, 4.0])], 0.25)  # 0.75 * p + 0.25 * p0
    assert p.detach().tolist() == [1.5, -2.0]


def blobs(n: int = 40) -> torch.Tensor:
    """(n, 2) points in two far blobs (first half / second half)."""
    x = torch.zeros(n, 2)
    x[n // 2 :, 0] = 10.0
    x += 0.01 * torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return x


def test_diagnosis_measures_the_train_validation_purity_gap() -> None:
    # identity encoders, no feature norm: the features are the inputs. Train labels follow the
    # blobs (purity 1), validation labels alternate inside each blob (purity 0.5): gap 0.5.
    spec = DataSpec(("a", "b"), {"a": (2,), "b": (2,)}, num_classes=2)
    config = TrainConfig(encoder="identity", feature_norm="none", dnr_every=1, dnr_alpha=2.0)
    model = tiny_model(config, "dnr", spec)
    objective = build_objective("dnr", config, spec)
    x = {m: blobs() for m in "ab"}
    train = Batch(x=x, y=torch.cat([torch.zeros(20), torch.ones(20)]).long())
    val = Batch(x=x, y=(torch.arange(40) % 2).long())
    objective.begin_epoch(model, 1, train, val)
    assert isinstance(objective, DiagnoseRelearn) and objective.last == {}
    objective.begin_epoch(model, 2, train, val)
    assert objective.last == pytest.approx({"a": math.tanh(1.0), "b": math.tanh(1.0)})


def test_relearning_moves_encoders_back_towards_their_first_weights() -> None:
    config = TrainConfig(**SMALL, dnr_every=2)
    model = tiny_model(config, "dnr")
    objective = build_objective("dnr", config, SPEC)
    train, val = tiny_batch(24, seed=3), tiny_batch(12, seed=4)
    first = {n: p.detach().clone() for n, p in model.named_parameters()}
    objective.begin_epoch(model, 1, train, val)  # remembers the first weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # stands for training
    objective.begin_epoch(model, 2, train, val)  # not a diagnosis epoch (every 2: epochs 3, 5)
    assert all(torch.equal(p, first[n] + 1) for n, p in model.named_parameters())
    objective.begin_epoch(model, 3, train, val)
    assert isinstance(objective, DiagnoseRelearn)
    for n, p in model.named_parameters():
        if n.startswith("encoders."):
            a = objective.last[n.split(".")[1]]
            assert torch.allclose(p, first[n] + (1 - a), atol=1e-6), n
        else:
            assert torch.equal(p, first[n] + 1), n  # heads and fusion keep training
    out = objective.loss(model, train, step_context())
    assert {"reinit_a", "reinit_b"} <= set(out.logs)
