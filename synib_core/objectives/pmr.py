"""PMR, Prototypical Modal Rebalance (Fan, Xu, Wang, Wang & Guo, CVPR 2023, "PMR: Prototypical
modal rebalance for multimodal learning"), following the authors' released code
(fanyunfeng-bit/Modal-Imbalance-PMR, ``main_Prototype_grad.py``).

Prototypes: c^m_k = mean feature z_m of the training samples of class k, computed before the
first epoch and then before every epoch as c <- (1 - mu) c_new + mu c_old (mu = ``pmr_momentum``;
all training rows, where the released code uses the first tenth of its batches).

Prototype classifier of modality m: logits_m = -||z_m - c^m_k||_2 for each class k, (B, K);
PCE_m = CE(logits_m, y). Learning speed: s_m = sum_i softmax(logits_m)_{i, y_i} and
rho_m = s_m / mean_{j != m} s_j (two modalities: s_a / s_b).

    loss = CE(f(z), y) + pmr_alpha * sum_{m : rho_m < 1} PCE_m

The slower modality's features are pulled towards its class prototypes (with two modalities the
released rule exactly: the modality with the lower score; neither on a tie).
Not implemented: the paper's prototype entropy regulariser for the early epochs, which the
released code does not contain. Prototypes of classes absent from training stay at 0.

Example:
    >>> prototype_logits(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    tensor([[-5., -1.]])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
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
from synib_core.objectives.losses import cross_entropy
from synib_core.objectives.split_features import split_features

__all__ = ["PMR", "class_means", "prototype_logits", "slow_modalities"]


def class_means(feats: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """(K, H) mean of feats (N, H) over the rows of each class of y (N,); 0 for absent classes."""
    sums = torch.zeros(num_classes, feats.shape[1], dtype=feats.dtype, device=feats.device)
    sums.index_add_(0, y, feats)
    counts = torch.bincount(y, minlength=num_classes).clamp_min(1).to(feats.dtype)
    return sums / counts[:, None]


def prototype_logits(feats: Tensor, prototypes: Tensor) -> Tensor:
    """(B, K) = -Euclidean distance of each feature (B, H) to each prototype (K, H)."""
    sq = (feats.float()[:, None, :] - prototypes.float()[None, :, :]).pow(2).sum(-1)
    return -sq.clamp_min(1e-12).sqrt()  # the floor keeps the gradient finite at distance 0


def slow_modalities(scores: dict[str, float]) -> list[str]:
    """Modalities with rho_m = s_m / mean_{j != m} s_j < 1, in the order given."""
    slow = []
    for m, s in scores.items():
        others = [v for j, v in scores.items() if j != m]
        if s < sum(others) / len(others):
            slow.append(m)
    return slow


class PMR(Objective):
    """Fused CE plus prototype CE for the slower modalities (module docstring)."""

    name = "pmr"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        if len(spec.modalities) < 2:
            raise ValueError("spec.modalities: pmr needs at least two modalities")
        self.alpha, self.momentum = config.pmr_alpha, config.pmr_momentum
        self.num_classes = spec.num_classes
        self.prototypes: dict[str, Tensor] = {}  # m -> (K, H)

    @torch.no_grad()
    def begin_epoch(self, model: ModelLike, epoch: int, train: Batch, val: Batch) -> None:
        feats = split_features(model, train)
        for m, z in feats.items():
            fresh = class_means(z, train.y, self.num_classes)
            old = self.prototypes.get(m)
            self.prototypes[m] = (
                fresh
                if old is None
                else ((1 - self.momentum) * fresh + self.momentum * old.to(fresh.device))
            )

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        logits = model.fuse(feats)
        ce = cross_entropy(logits, batch.y)
        logs = {"ce": float(ce.detach())}
        if not ctx.training or not self.prototypes:
            return ObjectiveOutput(loss=ce, logits=logits, logs=logs)
        proto = {m: prototype_logits(z, self.prototypes[m].to(z.device)) for m, z in feats.items()}
        scores = {
            m: float(torch.softmax(p.detach(), 1).gather(1, batch.y[:, None]).sum())
            for m, p in proto.items()
        }
        loss = ce
        for m in slow_modalities(scores):
            pce = F.cross_entropy(proto[m], batch.y)
            loss = loss + self.alpha * pce
            logs[f"pce_{m}"] = float(pce.detach())
        logs.update({f"score_{m}": s for m, s in scores.items()})
        return ObjectiveOutput(loss=loss, logits=logits, logs=logs)

    def state_dict(self) -> dict[str, Any]:
        return {"prototypes": {m: p.detach().cpu() for m, p in self.prototypes.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = dict(state.get("prototypes", {}))
