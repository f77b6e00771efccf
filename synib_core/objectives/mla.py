"""MLA, Multimodal Learning with Alternating unimodal adaptation (Zhang, Yoon, Bansal & Yao,
CVPR 2024, "Multimodal representation learning by alternating unimodal adaptation").

Model: the encoders and one linear head h shared by every modality (the ``shared_head`` fusion).

Training: each batch makes M optimiser updates, one per modality in turn
(``updates_per_batch`` = M, ``ctx.substep`` = m's index); update m minimises CE(h(z_m), y), so
only encoder m and h receive gradients. After back-propagation, h's weight gradient G (out, H)
is projected away from the input directions of the previous modality (the one updated just
before, cyclically), so learning one modality does not overwrite what h learnt from another
(orthogonal weight modification, as the official code's ``GSPlugin``):

    r = batch mean of the previous modality's features (1, H),  k = P r^T (H, 1)
    P <- P - k k^T / (alpha + r k),  P <- P / ||P||_F,  G <- G P^T

P (H, H) starts as the identity, is shared by the modalities and checkpointed; alpha = 0.1 (the
official code anneals it from 0.1 to 0.01 within each epoch); like the official code the first
batch is left unprojected.

Prediction: f(x) = sum_m w_m h(z_m) with per-sample weights w = softmax_m(-H(p_m)), the entropy
of each modality's predicted distribution (the paper's uncertainty-based fusion; per sample,
where the official code pools the batch). See ``SharedHeadFusion``.

Example:
    >>> update_projector(torch.eye(2), torch.tensor([[1.0, 0.0]]))  # (I - e1 e1^T / 1.1) / norm
    tensor([[0.0905, 0.0000],
            [0.0000, 0.9959]])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from synib_core.config import TrainConfig
from synib_core.objectives.base import (
    Batch,
    ModelLike,
    Objective,
    ObjectiveOutput,
    SpecLike,
    StepContext,
)
from synib_core.objectives.losses import cross_entropy

__all__ = ["MLA", "PROJECTION_ALPHA", "shared_head", "update_projector"]

PROJECTION_ALPHA = 0.1


def update_projector(projector: Tensor, r: Tensor, alpha: float = PROJECTION_ALPHA) -> Tensor:
    """The next P (H, H) from P (H, H) and the mean feature r (1, H): the recursive least-squares
    step P - k k^T / (alpha + r k) with k = P r^T, then scaled to unit Frobenius norm."""
    k = projector @ r.T  # (H, 1)
    updated = projector - (k @ k.T) / (alpha + float(r @ k))
    return updated / torch.linalg.matrix_norm(updated)


def shared_head(model: ModelLike) -> nn.Linear:
    """The linear head the model's fusion shares across modalities (``model.fusion.head``)."""
    head = getattr(getattr(model, "fusion", None), "head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError("model: mla needs the shared_head fusion (build the model for 'mla')")
    return head


class MLA(Objective):
    """One update per modality and batch through the shared head (module docstring)."""

    name = "mla"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del config
        self.modalities = tuple(spec.modalities)
        self.updates_per_batch = len(self.modalities)
        self.projector: Tensor | None = None  # (H, H), created on the first update

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        m = self.modalities[ctx.substep % len(self.modalities)]
        logits = model.fuse({m: model.encode(m, batch.x[m], batch.lengths.get(m))})  # h(z_m)
        ce = cross_entropy(logits, batch.y)
        aux: dict[str, Any] = {}
        if ctx.training and ctx.step >= self.updates_per_batch:  # not in the first batch
            prev = self.modalities[(ctx.substep - 1) % len(self.modalities)]
            with torch.no_grad():
                z_prev = model.encode(prev, batch.x[prev], batch.lengths.get(prev))
            aux["r"] = z_prev.float().mean(0, keepdim=True)  # (1, H)
        return ObjectiveOutput(
            loss=ce, logits=logits, logs={f"ce_{m}": float(ce.detach())}, aux=aux
        )

    def backward(self, out: ObjectiveOutput, model: ModelLike, scaler: Any = None) -> None:
        super().backward(out, model, scaler)
        r = out.aux.get("r")
        head = shared_head(model)
        if r is None or head.weight.grad is None:
            return
        if self.projector is None:
            self.projector = torch.eye(r.shape[1], device=r.device)
        self.projector = update_projector(self.projector.to(r.device), r)
        grad = head.weight.grad
        grad.copy_((grad.float() @ self.projector.T).to(grad.dtype))

    def state_dict(self) -> dict[str, Any]:
        return {} if self.projector is None else {"projector": self.projector.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.projector = state.get("projector")
