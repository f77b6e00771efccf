"""Objectives: SynIB, its penalties, masks and fills, and the baselines (docs/METHOD.md).

Example:
    >>> from synib_core.objectives import build_objective
    >>> objective = build_objective("synib", TrainConfig(lam=10.0), data.spec())  # doctest: +SKIP
    >>> out = objective.loss(model, batch, ctx); objective.backward(out, model)
"""

from synib_core.objectives.base import (
    Batch,
    ModelLike,
    Objective,
    ObjectiveConfigError,
    ObjectiveOutput,
    SpecLike,
    StepContext,
)
from synib_core.objectives.counterfactual import CounterfactualBuilder, fuse_counterfactuals
from synib_core.objectives.fills import FILLS, build_fill
from synib_core.objectives.losses import cross_entropy, lambda_at
from synib_core.objectives.masks import MASKS, build_mask
from synib_core.objectives.penalties import PENALTIES, evaluate_penalty
from synib_core.objectives.registry import OBJECTIVES, build_objective

__all__ = [
    "FILLS",
    "MASKS",
    "OBJECTIVES",
    "PENALTIES",
    "Batch",
    "CounterfactualBuilder",
    "ModelLike",
    "Objective",
    "ObjectiveConfigError",
    "ObjectiveOutput",
    "SpecLike",
    "StepContext",
    "build_fill",
    "build_mask",
    "build_objective",
    "cross_entropy",
    "evaluate_penalty",
    "fuse_counterfactuals",
    "lambda_at",
]
