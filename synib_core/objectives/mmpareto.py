"""MMPareto (Wei & Hu, ICML 2024): Pareto integration of multimodal and unimodal gradients.

Loss: CE(f(x), y) + sum_m CE(u_m(z_m), y) (unimodal weight 1, as in the paper; ``w_uni`` is
not read). Gradients: the fusion head gets the multimodal gradient, each unimodal head its own.
For each encoder m, with g_mm = d CE(f(x), y) / d theta_m and g_uni = d CE(u_m(z_m), y) / d theta_m
(flattened over all of the encoder's parameters):

- cos(g_mm, g_uni) >= 0: g = g_mm + g_uni (the paper's weights 1/2, 1/2, times 2);
- cos < 0: g = 2 * (gamma * g_mm + (1 - gamma) * g_uni) with gamma the MGDA min-norm weight of
  two vectors (``mgda_two``, closed form), then, if shorter, rescaled to the norm of
  g_mm + g_uni (the paper's "enhanced magnitude"; we do not add the reference code's extra
  factor 1.5, and we rescale per encoder rather than per tensor).

Two ``autograd.grad`` passes replace ``loss.backward``; gradients accumulate into ``.grad``.

Example:
    >>> combined, gamma, cos = pareto_combine(g_mm, g_uni)   # flat (P,) vectors
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
from synib_core.objectives.gradients import encoder_parameters, flat, mgda_two, other_parameters
from synib_core.objectives.losses import task_terms, unimodal_cross_entropy

__all__ = ["MMPareto", "pareto_combine"]


def pareto_combine(g_mm: Tensor, g_uni: Tensor) -> tuple[Tensor, float, float]:
    """(combined (P,), gamma, cosine) for one encoder's flat gradients g_mm, g_uni: (P,)."""
    if g_mm.numel() == 0:
        return g_mm + g_uni, 0.5, 0.0
    cos = float(F.cosine_similarity(g_mm[None], g_uni[None], eps=1e-12)[0])
    plain = g_mm + g_uni
    if cos >= 0:
        return plain, 0.5, cos
    gamma = mgda_two(g_mm, g_uni)
    combined = 2.0 * (gamma * g_mm + (1.0 - gamma) * g_uni)
    norm, target = float(combined.norm()), float(plain.norm())
    if 0 < norm < target:
        combined = combined * (target / norm)
    return combined, gamma, cos


def _accumulate(params: Sequence[nn.Parameter], grads: Sequence[Tensor | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        if g is None:
            continue
        g = g.detach().to(p.dtype)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.add_(g)


def _unflatten(vector: Tensor, params: Sequence[nn.Parameter]) -> list[Tensor]:
    sizes = [p.numel() for p in params]
    return [v.view_as(p) for v, p in zip(vector.split(sizes), params, strict=True)]


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


class MMPareto(Objective):
    """Multimodal + unimodal CE; ``backward`` integrates the two per encoder (module docstring)."""

    name = "mmpareto"

    def __init__(self, config: TrainConfig, spec: SpecLike) -> None:
        del config, spec

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        feats = model.encode_all(batch)
        terms = task_terms(model, feats, batch.y, 0.0)
        uni = torch.stack(list(unimodal_cross_entropy(model, feats, batch.y).values())).sum()
        logs = {"ce": float(terms.ce.detach()), "uni": float(uni.detach())}
        aux = {"ce": terms.ce, "uni": uni}
        return ObjectiveOutput(loss=terms.ce + uni, logits=terms.logits, logs=logs, aux=aux)

    def backward(self, out: ObjectiveOutput, model: ModelLike, scaler: Any = None) -> None:
        ce, uni = out.aux.get("ce"), out.aux.get("uni")
        if not isinstance(ce, Tensor) or not isinstance(uni, Tensor):
            raise ValueError("out: mmpareto.backward needs the output of MMPareto.loss()")
        if scaler is not None:
            ce, uni = scaler.scale(ce), scaler.scale(uni)
        encoders = encoder_parameters(model)
        heads = other_parameters(model)
        enc_params = [p for ps in encoders.values() for p in ps]
        params = enc_params + heads
        g_mm = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True)
        g_uni = torch.autograd.grad(uni, params, allow_unused=True)
        start = 0
        for m, ps in encoders.items():
            stop = start + len(ps)
            a, b = flat(g_mm[start:stop], ps), flat(g_uni[start:stop], ps)
            combined, gamma, cos = pareto_combine(a.to(b.device), b)
            _accumulate(ps, _unflatten(combined, ps))
            out.logs[f"cos_{m}"], out.logs[f"gamma_{m}"] = cos, gamma
            start = stop
        n = len(enc_params)
        _accumulate(heads, [_add(a, b) for a, b in zip(g_mm[n:], g_uni[n:], strict=True)])
