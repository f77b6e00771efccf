"""Baselines that only change the loss (docs/METHOD.md): ``vanilla``, ``ensemble``
and ``modality_dropout``. ``ogm_ge`` and ``mmpareto`` change the gradients and live in their own
modules; ``masking_only`` shares SynIB's counterfactuals and lives in ``synib.py``.

Example:
    >>> out = Vanilla(TrainConfig(w_uni=0.05), spec).loss(model, batch, ctx)   # doctest: +SKIP
"""

from __future__ import annotations

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
from synib_core.objectives.fills import rand_from
from synib_core.objectives.losses import cross_entropy, task_terms, unimodal_cross_entropy

__all__ = ["Ensemble", "ModalityDropout", "Vanilla", "drop_modalities"]


def _float(t: Tensor | None) -> float:
    return 0.0 if t is None else float(t.detach())


class Vanilla(Objective):
    """CE(f(x), y) + w_uni * sum_m CE(u_m(z_m), y): SynIB with lambda = 0."""

    name = "vanilla"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del spec
        self.w_uni, self.uni_detach = config.w_uni, config.uni_detach

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        terms = task_terms(model, model.encode_all(batch), batch.y, self.w_uni, self.uni_detach)
        logs = {"ce": _float(terms.ce), "uni": _float(terms.uni)}
        return ObjectiveOutput(loss=terms.loss, logits=terms.logits, logs=logs)


class Ensemble(Objective):
    """sum_m CE(u_m(z_m), y): each encoder + head learns alone (no gradient crosses modalities).

    The model built for ``ensemble`` fuses by summing the unimodal logits, so the returned
    logits (``model.fuse``) are the ensemble's prediction; ``ce`` logs their CE (not trained on).
    """

    name = "ensemble"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del config, spec

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        uni = torch.stack(list(unimodal_cross_entropy(model, feats, batch.y).values())).sum()
        logits = model.fuse(feats)  # (B, out_dim) = sum_m u_m(z_m) for the ensemble model
        logs = {"ce": float(cross_entropy(logits.detach(), batch.y)), "uni": _float(uni)}
        return ObjectiveOutput(loss=uni, logits=logits, logs=logs)


def drop_modalities(
    feats: dict[str, Tensor], prob: float, generator: torch.Generator
) -> tuple[dict[str, Tensor], Tensor]:
    """Zero whole modalities per sample, each with probability ``prob``, never all of them.

    feats: m -> (B, H). Returns the new features and keep (B, M) bool (column order = feats).
    A sample that drew "drop" for every modality keeps one, chosen uniformly from the RNG
    (the (B,) choice is drawn every step, so the RNG stream does not depend on the outcome).
    """
    names = list(feats)
    first = feats[names[0]]
    shape = (first.shape[0], len(names))
    keep = rand_from(shape, generator, first.device) >= prob  # (B, M)
    pick = (rand_from(shape[:1], generator, first.device) * len(names)).long()  # (B,)
    pick = pick.clamp_max(len(names) - 1)
    rescue = ~keep.any(dim=1)
    keep[rescue, pick[rescue]] = True
    dropped = {
        m: torch.where(keep[:, k, None], z, torch.zeros_like(z))
        for k, (m, z) in enumerate(feats.items())
    }
    return dropped, keep


class ModalityDropout(Objective):
    """In training, CE on the fused prediction with whole modalities zeroed at random
    (``modality_dropout_prob`` each, never all); unimodal CE (w_uni) on the intact features.
    In evaluation it is vanilla."""

    name = "modality_dropout"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del spec
        if not 0 <= config.modality_dropout_prob < 1:
            raise ValueError(
                f"modality_dropout_prob: must be in [0, 1), got {config.modality_dropout_prob}"
            )
        self.prob, self.w_uni = config.modality_dropout_prob, config.w_uni
        self.uni_detach = config.uni_detach

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        if not ctx.training:
            terms = task_terms(model, feats, batch.y, self.w_uni, self.uni_detach)
            logs = {"ce": _float(terms.ce), "uni": _float(terms.uni), "kept": 1.0}
            return ObjectiveOutput(loss=terms.loss, logits=terms.logits, logs=logs)
        dropped, keep = drop_modalities(feats, self.prob, ctx.generator)
        logits = model.fuse(dropped)
        ce = cross_entropy(logits, batch.y)
        loss, uni = ce, None
        if self.w_uni > 0:
            uni = torch.stack(list(unimodal_cross_entropy(model, feats, batch.y).values())).sum()
            loss = ce + self.w_uni * uni
        logs = {"ce": _float(ce), "uni": _float(uni), "kept": float(keep.float().mean())}
        return ObjectiveOutput(loss=loss, logits=logits, logs=logs)
