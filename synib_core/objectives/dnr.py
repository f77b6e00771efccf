"""D&R, Diagnosing & Re-learning (Wei, Li, Feng & Hu, ECCV 2024, "Diagnosing and re-learning for
balanced multimodal learning").

Loss: the vanilla loss CE(f(x), y) + w_uni * sum_m CE(u_m(z_m), y).

Every ``dnr_every`` epochs (before epochs 1 + k * dnr_every, k >= 1) each modality is diagnosed
and its encoder softly re-initialised:

- diagnose: k-means with K clusters (K classes; scikit-learn, seed 0, 10 restarts) of the
  encoder's features, scaled to [-1, 1] per column, on the training and on the validation split;
  purity P = share of samples whose cluster's majority label is their label. The gap
  g_m = |P_train - P_val| is large for a modality that learnt its training set by heart;
- re-learn: theta_m <- (1 - a_m) theta_m + a_m theta_m^init, a_m = tanh(dnr_alpha * g_m), with
  theta_m^init the encoder's weights before the first epoch.

The heads and the fusion are not re-initialised (the paper re-initialises uni-modal encoders).

Example:
    >>> purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]))   # clusters {5: 0,0,1}, {7: 1}
    0.75
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
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
from synib_core.objectives.gradients import encoder_parameters
from synib_core.objectives.losses import task_terms
from synib_core.objectives.split_features import split_features

__all__ = ["DiagnoseRelearn", "purity", "relearn_strength", "soft_reinit_"]


def purity(y: np.ndarray, clusters: np.ndarray) -> float:
    """Share of samples whose cluster's most frequent label (ties: the smallest) is their own.
    y, clusters: (N,) ints."""
    y, clusters = np.asarray(y), np.asarray(clusters)
    if y.shape != clusters.shape or y.ndim != 1 or y.shape[0] == 0:
        raise ValueError(f"y, clusters: expected equal non-empty (N,) arrays, got {y.shape}")
    hits = sum(np.bincount(y[clusters == c]).max() for c in np.unique(clusters))
    return float(hits) / y.shape[0]


def _cluster_purity(feats: Tensor, y: np.ndarray, k: int) -> float:
    from sklearn.cluster import KMeans  # scikit-learn comes with synib[core]

    z = feats.double().cpu().numpy()
    k = min(k, z.shape[0])  # a tiny split cannot hold more clusters than rows
    low, span = z.min(axis=0), np.ptp(z, axis=0)
    scaled = 2 * (z - low) / np.where(span > 0, span, 1.0) - 1  # [-1, 1] per column
    clusters = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(scaled)
    return purity(y, clusters)


def relearn_strength(purity_train: float, purity_val: float, alpha: float) -> float:
    """a = tanh(alpha * |P_train - P_val|). Example: relearn_strength(0.9, 0.7, 3) = tanh(0.6)."""
    return math.tanh(alpha * abs(purity_train - purity_val))


@torch.no_grad()
def soft_reinit_(params: list[nn.Parameter], init: list[Tensor], strength: float) -> None:
    """In place: p <- (1 - strength) * p + strength * p_init for each parameter."""
    for p, p0 in zip(params, init, strict=True):
        p.mul_(1.0 - strength).add_(p0.to(p.device, p.dtype), alpha=strength)


class DiagnoseRelearn(Objective):
    """Vanilla loss; ``begin_epoch`` diagnoses and softly re-initialises encoders."""

    name = "dnr"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        self.w_uni, self.uni_detach = config.w_uni, config.uni_detach
        self.alpha, self.every = config.dnr_alpha, config.dnr_every
        self.num_classes = spec.num_classes
        self.init: dict[str, list[Tensor]] = {}  # encoder weights before the first epoch
        self.last: dict[str, float] = {}  # strengths of the latest re-initialisation

    def begin_epoch(self, model: ModelLike, epoch: int, train: Batch, val: Batch) -> None:
        encoders = encoder_parameters(model)
        if not self.init:
            self.init = {m: [p.detach().clone() for p in ps] for m, ps in encoders.items()}
        if epoch == 1 or (epoch - 1) % self.every:
            return
        feats_train, feats_val = split_features(model, train), split_features(model, val)
        y_train, y_val = train.y.cpu().numpy(), val.y.cpu().numpy()
        for m, params in encoders.items():
            p_train = _cluster_purity(feats_train[m], y_train, self.num_classes)
            p_val = _cluster_purity(feats_val[m], y_val, self.num_classes)
            self.last[m] = relearn_strength(p_train, p_val, self.alpha)
            soft_reinit_(params, self.init[m], self.last[m])

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        terms = task_terms(model, model.encode_all(batch), batch.y, self.w_uni, self.uni_detach)
        logs = {"ce": float(terms.ce.detach())}
        logs["uni"] = 0.0 if terms.uni is None else float(terms.uni.detach())
        logs.update({f"reinit_{m}": a for m, a in self.last.items()})
        return ObjectiveOutput(loss=terms.loss, logits=terms.logits, logs=logs)

    def state_dict(self) -> dict[str, Any]:
        return {"init": {m: list(ps) for m, ps in self.init.items()}, "last": dict(self.last)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.init = {m: list(ps) for m, ps in state.get("init", {}).items()}
        self.last = dict(state.get("last", {}))
