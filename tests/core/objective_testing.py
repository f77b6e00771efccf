"""Tiny models, batches and step contexts shared by the baseline tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from synib_core.backbones import MultimodalModel, build_model
from synib_core.config import TrainConfig
from synib_core.data.dataset import DataSpec
from synib_core.objectives import Batch, StepContext

SMALL: dict[str, Any] = {"hidden": 8, "fusion_hidden": 8, "encoder_layers": 1}
SPEC = DataSpec(("a", "b"), {"a": (4,), "b": (5,)}, num_classes=3)


def tiny_model(config: TrainConfig, method: str, spec: DataSpec = SPEC) -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(config, spec, method)


def tiny_batch(n: int = 8, seed: int = 1, spec: DataSpec = SPEC) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(n, *spec.shapes[m], generator=g) for m in spec.modalities}
    return Batch(x=x, y=torch.randint(0, spec.num_classes, (n,), generator=g))


def step_context(
    *,
    epoch: int = 1,
    step: int = 0,
    substep: int = 0,
    seed: int = 2,
    training: bool = True,
    num_classes: int = 3,
) -> StepContext:
    return StepContext(
        epoch=epoch, num_epochs=10, step=step, generator=torch.Generator().manual_seed(seed),
        train_prior=torch.ones(num_classes) / num_classes, training=training, substep=substep,
    )  # fmt: skip


def gradients(model: torch.nn.Module, prefix: str) -> dict[str, Tensor]:
    """name -> gradient (a copy) of the parameters under ``prefix`` that have one."""
    return {
        n: p.grad.clone()
        for n, p in model.named_parameters()
        if n.startswith(prefix) and p.grad is not None
    }
