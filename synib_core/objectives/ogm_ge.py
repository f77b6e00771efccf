"""OGM-GE: On-the-fly Gradient Modulation with Generalisation Enhancement (Peng et al., 2022).

Loss: the vanilla loss. After back-propagation every encoder gradient g of modality m becomes

    g <- c_m * g + N(0, std(g)^2),   c_m = 1 - tanh(ogm_alpha * rho_m) if rho_m > 1 else 1,

rho_m = s_m / mean_{j != m} s_j (for two modalities: s_m / s_other), std(g) the gradient
tensor's own standard deviation before scaling (GE; tensors with one element get no noise).

Per-modality confidence s_m for a non-linear fusion head: the paper splits a linear fusion
layer into per-modality parts; our fusion is an MLP, so s_m is the summed probability of the
true class that the fused head gives when only modality m is present and every other
modality's feature is replaced by zeros (the mean of the LayerNorm-ed features). The M solo
passes run as one batched ``fuse`` call without gradients. Noise comes from ``ctx.generator``.

Example:
    >>> coefficients({"a": 3.0, "b": 1.0}, alpha=0.5)   # {'a': 1 - tanh(1.5), 'b': 1.0}
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from synib_core.config import TrainConfig
from synib_core.objectives.base import (
    Batch,
    ModelLike,
    Objective,
    ObjectiveOutput,
    SpecLike,
    StepContext,
)
from synib_core.objectives.fills import randn_from
from synib_core.objectives.gradients import encoder_parameters
from synib_core.objectives.losses import task_terms, true_class_probability

__all__ = ["OgmGe", "coefficients", "confidence_scores"]


def confidence_scores(model: ModelLike, feats: dict[str, Tensor], y: Tensor) -> dict[str, float]:
    """s_m = sum_i p(y_i | f(z_m, 0_-m)); feats: m -> (B, H); y: (B,). No gradients."""
    order = list(feats)
    batch_size = y.shape[0]
    with torch.no_grad():
        # each modality j: (M * B, H); block k keeps z_j only when j is the k-th modality
        solo = {
            j: torch.cat([z if m == j else torch.zeros_like(z) for m in order])
            for j, z in feats.items()
        }
        probs = true_class_probability(model.fuse(solo), y.repeat(len(order)))  # (M * B,)
        return {m: float(p.sum()) for m, p in zip(order, probs.split(batch_size), strict=True)}


def coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """c_m = 1 - tanh(alpha * rho_m) when rho_m = s_m / mean_{j != m} s_j > 1, else 1."""
    out: dict[str, float] = {}
    for m, s in scores.items():
        others = [v for j, v in scores.items() if j != m]
        rho = s / max(sum(others) / len(others), 1e-12) if others else 1.0
        out[m] = 1.0 - math.tanh(alpha * rho) if rho > 1 else 1.0
    return out


class OgmGe(Objective):
    """Vanilla loss; ``backward`` scales each encoder's gradient by c_m and adds GE noise."""

    name = "ogm_ge"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del spec
        self.alpha, self.w_uni = config.ogm_alpha, config.w_uni
        self.uni_detach = config.uni_detach

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        terms = task_terms(model, feats, batch.y, self.w_uni, self.uni_detach)
        logs = {"ce": float(terms.ce.detach())}
        logs["uni"] = 0.0 if terms.uni is None else float(terms.uni.detach())
        aux: dict[str, object] = {}
        if ctx.training:
            coeffs = coefficients(confidence_scores(model, feats, batch.y), self.alpha)
            logs.update({f"coeff_{m}": c for m, c in coeffs.items()})
            aux = {"coeffs": coeffs, "generator": ctx.generator}
        return ObjectiveOutput(loss=terms.loss, logits=terms.logits, logs=logs, aux=aux)

    def backward(self, out: ObjectiveOutput, model: ModelLike, scaler: Any = None) -> None:
        super().backward(out, model, scaler)
        coeffs = out.aux.get("coeffs")
        generator = out.aux.get("generator")
        if not isinstance(coeffs, dict) or not isinstance(generator, torch.Generator):
            raise ValueError("out: ogm_ge.backward needs the output of a training-mode loss()")
        for m, params in encoder_parameters(model).items():
            for p in params:
                if p.grad is not None:
                    modulate_(p.grad, coeffs[m], generator)


def modulate_(grad: Tensor, coeff: float, generator: torch.Generator) -> None:
    """In place: grad <- coeff * grad + N(0, std(grad)^2) (no noise for one-element tensors)."""
    std = float(grad.float().std()) if grad.numel() > 1 else 0.0
    grad.mul_(coeff)
    if std > 0 and math.isfinite(std):
        noise = randn_from(tuple(grad.shape), generator, grad.device)
        grad.add_(noise.to(grad.dtype), alpha=std)
