"""The SynIB objective (docs/METHOD.md) and its ``masking_only`` ablation.

    L = CE(f(x), y) + w_uni * sum_m CE(u_m(z_m), y) + lambda(t) * sum_m w_m * Omega(f(x~_m, x_-m))

lambda(t) ramps linearly over ``warmup_epochs`` (``lambda_at``); w_m come from
``modality_weights``. When lambda(t) == 0 no mask is drawn and no counterfactual pass runs, so
the loss, its gradient and the RNG stream are exactly those of ``vanilla``.

Example:
    >>> obj = SynIB(TrainConfig(lam=10.0, mask="full"), data.spec())        # doctest: +SKIP
    >>> out = obj.loss(model, batch, ctx); out.logs   # {'ce':, 'uni':, 'lambda':, 'penalty':}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from synib_core.config import TrainConfig
from synib_core.objectives.base import (
    Batch,
    ModelLike,
    Objective,
    ObjectiveConfigError,
    ObjectiveOutput,
    SpecLike,
    StepContext,
)
from synib_core.objectives.counterfactual import CounterfactualBuilder
from synib_core.objectives.fills import EmaFill
from synib_core.objectives.losses import cross_entropy, lambda_at, task_terms
from synib_core.objectives.penalties import PENALTIES, evaluate_penalty

__all__ = ["MaskingOnly", "SynIB", "modality_weights"]


def modality_weights(config: TrainConfig, spec: SpecLike) -> dict[str, float]:
    """w_m for every modality of ``spec`` (default 1) from the ``modality_weights`` knob."""
    modalities = tuple(spec.modalities)
    if len(modalities) < 2:
        raise ObjectiveConfigError("modalities", f"SynIB needs >= 2 modalities, got {modalities}")
    return config.modality_weight_map(modalities)


class SynIB(Objective):
    """CE + w_uni * unimodal CE + lambda(t) * leave-one-out penalty on counterfactuals."""

    name = "synib"
    term_log = "penalty"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        if config.penalty not in PENALTIES:
            raise ObjectiveConfigError("penalty", f"unknown {config.penalty!r}")
        needs_heads = config.mask == "learned" or (
            self.term_log == "penalty" and config.penalty == "anchor"
        )
        if needs_heads and config.w_uni <= 0:
            raise ObjectiveConfigError(
                "w_uni", "the learned mask and the anchor penalty need w_uni > 0"
            )
        self.lam, self.warmup_epochs, self.w_uni = config.lam, config.warmup_epochs, config.w_uni
        self.uni_detach = config.uni_detach
        self.penalty = config.penalty
        self.weights = modality_weights(config, spec)
        self.counterfactuals = CounterfactualBuilder.from_config(config)

    def lambda_at(self, epoch: int) -> float:
        """Penalty weight at 1-based ``epoch`` (linear warm-up)."""
        return lambda_at(self.lam, self.warmup_epochs, epoch)

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)  # m -> (B, H)
        terms = task_terms(model, feats, batch.y, self.w_uni, self.uni_detach)
        lam = self.lambda_at(ctx.epoch)
        logs = {
            "ce": float(terms.ce.detach()),
            "uni": 0.0 if terms.uni is None else float(terms.uni.detach()),
            "lambda": lam,
        }
        if lam == 0:
            logs[self.term_log] = 0.0
            return ObjectiveOutput(loss=terms.loss, logits=terms.logits, logs=logs)
        cf_logits = self.counterfactuals.logits(model, batch, feats, ctx)  # m -> (B, out_dim)
        term = self.counterfactual_term(model, feats, cf_logits, batch, ctx)
        logs[self.term_log] = float(term.detach())
        return ObjectiveOutput(loss=terms.loss + lam * term, logits=terms.logits, logs=logs)

    def counterfactual_term(
        self,
        model: ModelLike,
        feats: dict[str, Tensor],
        cf_logits: dict[str, Tensor],
        batch: Batch,
        ctx: StepContext,
    ) -> Tensor:
        """sum_m w_m * mean_i Omega(f(x~_m, x_-m)_i). cf_logits: m -> (B, out_dim)."""
        anchors: dict[str, Tensor] = {}
        if self.penalty == "anchor":
            anchors = {m: model.unimodal_logits(m, z).detach() for m, z in feats.items()}
        total = torch.zeros((), device=batch.y.device)
        for m, logits in cf_logits.items():
            others = [a for j, a in anchors.items() if j != m]
            value = evaluate_penalty(self.penalty, logits, prior=ctx.train_prior, anchors=others)
            total = total + self.weights[m] * value.mean
        return total

    def state_dict(self) -> dict[str, Any]:
        fill = self.counterfactuals.fill
        return {"fill": fill.state_dict()} if isinstance(fill, EmaFill) else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "fill" in state:
            self.counterfactuals.fill.load_state_dict(state["fill"])


class MaskingOnly(SynIB):
    """SynIB's counterfactuals as augmentation: lambda(t) * sum_m w_m * CE(f(x~_m, x_-m), y)
    replaces the penalty (same masks, fills, weights and warm-up)."""

    name = "masking_only"
    term_log = "cf_ce"

    def counterfactual_term(
        self,
        model: ModelLike,
        feats: dict[str, Tensor],
        cf_logits: dict[str, Tensor],
        batch: Batch,
        ctx: StepContext,
    ) -> Tensor:
        total = torch.zeros((), device=batch.y.device)
        for m, logits in cf_logits.items():
            total = total + self.weights[m] * cross_entropy(logits, batch.y)
        return total
