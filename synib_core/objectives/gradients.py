"""Helpers for objectives that edit encoder gradients (``ogm_ge``, ``mmpareto``).

Example:
    >>> params = encoder_parameters(model)      # {"a": [...], "b": [...]}
    >>> mgda_two(torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0]))   # gamma for the 1st vector
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from synib_core.objectives.base import ModelLike

__all__ = ["encoder_parameters", "flat", "mgda_two", "other_parameters"]


def encoder_parameters(model: ModelLike) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters of each modality's encoder (``model.encoders[m]``), by modality."""
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, nn.ModuleDict):
        raise ValueError(
            "model: gradient-modulating objectives need `model.encoders` (a ModuleDict)"
        )
    return {m: [p for p in encoders[m].parameters() if p.requires_grad] for m in model.modalities}


def other_parameters(model: ModelLike) -> list[nn.Parameter]:
    """Trainable parameters outside the encoders (fusion head, unimodal heads)."""
    if not isinstance(model, nn.Module):
        raise ValueError("model: expected an nn.Module")
    owned = {id(p) for ps in encoder_parameters(model).values() for p in ps}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in owned]


def flat(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter]) -> Tensor:
    """One float32 vector of the gradients (None counts as zeros of the parameter's shape)."""
    parts = [
        (torch.zeros_like(p) if g is None else g).reshape(-1).float()
        for g, p in zip(grads, params, strict=True)
    ]
    if not parts:
        return torch.zeros(0)
    return torch.cat(parts)


def mgda_two(g1: Tensor, g2: Tensor) -> float:
    """Weight gamma in [0, 1] of the min-norm point gamma * g1 + (1 - gamma) * g2 (MGDA, two tasks).

    Closed form: gamma = ((g2 - g1) . g2) / ||g1 - g2||^2, clipped to [0, 1]; 0.5 when g1 == g2.
    g1, g2: vectors of equal length.
    """
    diff = (g1 - g2).double()
    denom = float(diff @ diff)
    if denom == 0.0:
        return 0.5
    gamma = float((g2.double() - g1.double()) @ g2.double()) / denom
    return min(1.0, max(0.0, gamma))
