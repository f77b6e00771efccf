"""Task losses shared by all objectives: cross-entropy (multiclass or one-logit binary), the
task terms CE(f(x), y) + w_uni * sum_m CE(u_m(z_m), y), and the lambda warm-up schedule.

Example:
    >>> cross_entropy(torch.zeros(2, 3), torch.tensor([0, 2]))   # log 3
    tensor(1.0986)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from synib_core.objectives.base import ModelLike

__all__ = [
    "TaskTerms",
    "cross_entropy",
    "lambda_at",
    "task_terms",
    "true_class_probability",
    "unimodal_cross_entropy",
]


def _check_logits(logits: Tensor, y: Tensor) -> None:
    if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(
            f"logits: expected shape (B, K) with B = {y.shape[0]}, got {tuple(logits.shape)}"
        )


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy in float32.

    logits: (B, K), or (B, 1) for a binary task (sigmoid, y in {0, 1}); y: (B,) int64.
    """
    _check_logits(logits, y)
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), y.float())
    return F.cross_entropy(logits.float(), y)


def true_class_probability(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) probability the model gives the true class. logits: (B, K) or (B, 1); y: (B,)."""
    _check_logits(logits, y)
    z = logits.float()
    if z.shape[1] == 1:
        sign = y.float() * 2.0 - 1.0  # p(y=1) = sigmoid(z), p(y=0) = sigmoid(-z)
        return torch.sigmoid(sign * z[:, 0])
    return torch.softmax(z, dim=1).gather(1, y[:, None])[:, 0]


def unimodal_cross_entropy(
    model: ModelLike, feats: dict[str, Tensor], y: Tensor
) -> dict[str, Tensor]:
    """Per-modality CE of the unimodal heads. feats: m -> (B, H); y: (B,). Returns m -> scalar."""
    return {m: cross_entropy(model.unimodal_logits(m, feats[m]), y) for m in model.modalities}


@dataclass
class TaskTerms:
    """logits (B, out_dim): fused on intact inputs; ce: CE(f(x), y); uni: sum_m CE(u_m(z_m), y)
    (None when w_uni == 0, the heads are not run); loss: ce + w_uni * uni."""

    logits: Tensor
    ce: Tensor
    uni: Tensor | None
    loss: Tensor


def task_terms(
    model: ModelLike,
    feats: dict[str, Tensor],
    y: Tensor,
    w_uni: float,
    uni_detach: bool = False,
) -> TaskTerms:
    """CE(f(x), y) + w_uni * sum_m CE(u_m(z_m), y). feats: m -> (B, H) encoder outputs;
    ``uni_detach``: the unimodal CE sees detached features, so it trains the heads only.

    Every objective that reduces to vanilla builds its loss here, so that lambda = 0 gives the
    very same floating-point operations as the baseline.
    """
    logits = model.fuse(feats)
    ce = cross_entropy(logits, y)
    if w_uni == 0:
        return TaskTerms(logits=logits, ce=ce, uni=None, loss=ce)
    uni_feats = {m: z.detach() for m, z in feats.items()} if uni_detach else feats
    uni = torch.stack(list(unimodal_cross_entropy(model, uni_feats, y).values())).sum()
    return TaskTerms(logits=logits, ce=ce, uni=uni, loss=ce + w_uni * uni)


def lambda_at(lam: float, warmup_epochs: int, epoch: int) -> float:
    """Penalty weight at 1-based ``epoch``: lam * min(1, (epoch - 1) / warmup_epochs).

    Linear from 0 at epoch 1 to lam at epoch warmup_epochs + 1; lam throughout when
    warmup_epochs == 0. Example: lambda_at(10, 4, 3) == 5.0.
    """
    if lam < 0:
        raise ValueError(f"lambda: must be >= 0, got {lam}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs: must be >= 0, got {warmup_epochs}")
    if warmup_epochs == 0:
        return float(lam)
    return float(lam) * min(1.0, max(0, epoch - 1) / warmup_epochs)
