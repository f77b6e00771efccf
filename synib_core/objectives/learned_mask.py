"""The learned, adversarial per-example gate (docs/METHOD.md, ``mask = "learned"``).

For modality m with values v (B, D) (detached) and fill values r (B, D), a gate
g = sigmoid(l / tau) in (0, 1)^(B x D) is found by ``mask_steps`` Adam steps (lr ``mask_lr``)
on l (initialised to 0, g = 1/2) minimising

    -CE(u_m(v + g * (r - v)), y) + mask_sparsity * mean(g)

with the model's parameters untouched (gradients are taken with respect to l only). g marks
the coordinates modality m's unimodal head relies on. ``keep_unimodal`` (default) corrupts the
complement (weights 1 - g); ``destroy_unimodal`` corrupts g itself. ``mask_hard`` thresholds g
at 0.5. The inner loop runs in training only; in evaluation the learned mask falls back to the
full mask (no optimisation outside training).

Example:
    >>> gate = learned_gate(v, r, y, head, steps=20, lr=0.1, tau=1.0, sparsity=0.1)  # (B, D)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from synib_core.config import TrainConfig
from synib_core.objectives.losses import cross_entropy
from synib_core.objectives.masks import FullMask, MaskRequest

__all__ = ["DIRECTIONS", "LearnedMask", "learned_gate"]

DIRECTIONS = ("keep_unimodal", "destroy_unimodal")


def learned_gate(
    values: Tensor,
    replacement: Tensor,
    y: Tensor,
    head: Callable[[Tensor], Tensor],
    *,
    steps: int,
    lr: float,
    tau: float,
    sparsity: float,
) -> Tensor:
    """(B, D) gate g in (0, 1) (detached): the coordinates whose corruption hurts the head most.

    values, replacement: (B, D); y: (B,); head: (B, D) corrupted values -> (B, out_dim) logits.
    """
    v, r = values.detach().float(), replacement.detach().float()
    logit = torch.zeros_like(v, requires_grad=True)
    opt = torch.optim.Adam([logit], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            gate = torch.sigmoid(logit / tau)
            corrupted = (v + gate * (r - v)).to(values.dtype)
            objective = -cross_entropy(head(corrupted), y) + sparsity * gate.mean()
            (grad,) = torch.autograd.grad(objective, [logit])
            logit.grad = grad
            opt.step()
    return torch.sigmoid(logit.detach() / tau)


class LearnedMask:
    """Mask whose corruption weights come from ``learned_gate`` (see the module docstring)."""

    def __init__(
        self,
        *,
        steps: int,
        lr: float,
        tau: float,
        sparsity: float,
        hard: bool = False,
        direction: str = "keep_unimodal",
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"learned_direction: unknown {direction!r}; allowed: {DIRECTIONS}")
        if steps < 1 or lr <= 0 or tau <= 0 or sparsity < 0:
            raise ValueError(
                "mask_steps >= 1, mask_lr > 0, mask_tau > 0 and mask_sparsity >= 0 are required, "
                f"got {steps}, {lr}, {tau}, {sparsity}"
            )
        self.steps, self.lr, self.tau, self.sparsity = steps, lr, tau, sparsity
        self.hard, self.direction = hard, direction

    @classmethod
    def from_config(cls, config: TrainConfig) -> LearnedMask:
        return cls(
            steps=config.mask_steps,
            lr=config.mask_lr,
            tau=config.mask_tau,
            sparsity=config.mask_sparsity,
            hard=config.mask_hard,
            direction=config.learned_direction,
        )

    def gate(self, request: MaskRequest) -> Tensor:
        """(B, D) relevance gate g (thresholded when ``hard``); training only."""
        if request.head is None:
            raise ValueError("mask: 'learned' needs the modality's unimodal head")
        gate = learned_gate(
            request.values,
            request.replacement,
            request.y,
            request.head,
            steps=self.steps,
            lr=self.lr,
            tau=self.tau,
            sparsity=self.sparsity,
        )
        return (gate > 0.5).float() if self.hard else gate

    def corruption(self, request: MaskRequest) -> Tensor:
        if not request.training:
            return FullMask().corruption(request)
        gate = self.gate(request)
        return 1.0 - gate if self.direction == "keep_unimodal" else gate
