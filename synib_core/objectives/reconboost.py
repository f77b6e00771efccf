"""ReconBoost (Hua, Xu, Bao, Yang & Huang, ICML 2024, "ReconBoost: Boosting can achieve modality
reconcilement"): modalities take turns, and each learner fits what the others miss.

Model: one learner per modality, u_m(z_m) (encoder m and its linear head), fused by their sum
F(x) = sum_m u_m(z_m) (the ``sum_unimodal`` fusion, as for ``ensemble``).

Schedule, by 1-based epoch, in cycles of M * (E + C) epochs (E = ``reconboost_stage_epochs``,
C = ``reconboost_rectify_epochs``): E epochs of modality m's boosting stage, then C epochs of
global rectification, then the next modality (``stage_of_epoch``).

Boosting stage of modality m (only learner m receives gradients; the others are evaluated
without them). With p_-m(y | x) the probability of the true class under the other learners'
summed logits (their ensemble without m), per sample

    loss_i = (w1 - w2 * p_-m(y_i | x_i)) * CE(u_m(z_m,i), y_i) / K

(w1 = ``reconboost_own_weight``, w2 = ``reconboost_others_weight``, K classes): samples the
others already get right weigh less, the gradient-boosting step the paper derives from its KL
reconcilement term (the official code's form, whose mean over the K classes gives the 1/K).
Rectification: CE(F(x), y), every learner.

Not implemented: the memory-consolidation term (in the official code it compares two detached
predictions and so adds no gradient) and the two SGD optimisers of the official code (the run's
optimiser serves both phases).

Example:
    >>> stage_of_epoch(5, ("a", "b"), stage_epochs=4, rectify_epochs=4) is None   # rectify
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
from synib_core.objectives.losses import cross_entropy, true_class_probability

__all__ = ["ReconBoost", "boosting_loss", "per_sample_cross_entropy", "stage_of_epoch"]


def stage_of_epoch(
    epoch: int, modalities: tuple[str, ...], *, stage_epochs: int, rectify_epochs: int
) -> str | None:
    """The modality whose learner trains in 1-based ``epoch``, or None for rectification.

    Example: E = 4, C = 4, two modalities: epochs 1-4 "a", 5-8 None, 9-12 "b", 13-16 None.
    """
    if epoch < 1:
        raise ValueError(f"epoch: must be >= 1, got {epoch}")
    block = stage_epochs + rectify_epochs
    position = (epoch - 1) % (block * len(modalities))
    index, within = divmod(position, block)
    return modalities[index] if within < stage_epochs else None


def per_sample_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) CE per sample in float32; logits (B, K), or (B, 1) for a binary task (sigmoid)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), y.float(), reduction="none")
    return F.cross_entropy(logits.float(), y, reduction="none")


def boosting_loss(
    logits: Tensor, others: Tensor, y: Tensor, *, w1: float, w2: float, num_classes: int
) -> Tensor:
    """mean_i (w1 - w2 * p_others(y_i)) * CE(logits_i, y_i) / K.

    logits: (B, out_dim) of the learner being trained; others: (B, out_dim) summed logits of the
    other learners (no gradient flows into them); y: (B,).
    """
    weight = w1 - w2 * true_class_probability(others.detach(), y)  # (B,)
    return (weight * per_sample_cross_entropy(logits, y)).mean() / num_classes


class ReconBoost(Objective):
    """Alternating boosting stages and joint rectification (module docstring)."""

    name = "reconboost"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        if config.reconboost_others_weight > config.reconboost_own_weight:
            raise ObjectiveConfigError(
                "reconboost_others_weight",
                "must not exceed reconboost_own_weight (sample weights would turn negative)",
            )
        self.stage_epochs = config.reconboost_stage_epochs
        self.rectify_epochs = config.reconboost_rectify_epochs
        self.w1, self.w2 = config.reconboost_own_weight, config.reconboost_others_weight
        self.num_classes = spec.num_classes

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        modalities = tuple(model.modalities)
        active = stage_of_epoch(
            ctx.epoch, modalities, stage_epochs=self.stage_epochs,
            rectify_epochs=self.rectify_epochs,
        )  # fmt: skip
        if active is None:
            logits = model.fuse(model.encode_all(batch))  # F(x) = sum_m u_m(z_m)
            ce = cross_entropy(logits, batch.y)
            return ObjectiveOutput(
                loss=ce, logits=logits, logs={"ce": float(ce.detach()), "stage": -1.0}
            )
        z = model.encode(active, batch.x[active], batch.lengths.get(active))
        own = model.unimodal_logits(active, z)  # (B, out_dim)
        with torch.no_grad():
            others = torch.stack(
                [
                    model.unimodal_logits(m, model.encode(m, batch.x[m], batch.lengths.get(m)))
                    for m in modalities
                    if m != active
                ]
            ).sum(0)  # (B, out_dim)
        loss = boosting_loss(
            own, others, batch.y, w1=self.w1, w2=self.w2, num_classes=self.num_classes
        )
        logits = own.detach() + others
        logs = {"ce": float(cross_entropy(logits, batch.y)), "boost": float(loss.detach()),
                "stage": float(modalities.index(active))}  # fmt: skip
        return ObjectiveOutput(loss=loss, logits=logits, logs=logs)
