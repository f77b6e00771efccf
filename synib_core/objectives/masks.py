"""Which elements of a modality a counterfactual corrupts (docs/METHOD.md, ``mask``).

A mask sees one modality's values flattened per sample to (B, D) (encoder features at
``mask_level = "feature"``, the raw input at ``"input"``) and returns corruption weights: a
bool (B, D) tensor (True = take the fill value) or float weights in [0, 1] (the learned gate).
``apply_corruption`` mixes values and replacement accordingly.

- ``random``: each element independently with probability ``mask_prob`` (from the step RNG).
- ``full``: every element.
- ``oracle``: exactly the dataset's oracle coordinates of that modality (none if it has none).
- ``learned``: the adversarial per-example gate of ``learned_mask.py``.

Example:
    >>> w = RandomMask(0.5).corruption(request)      # (B, D) bool
    >>> x_cf = apply_corruption(request.values, request.replacement, w)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from synib_core.config import TrainConfig
from synib_core.objectives.fills import rand_from

__all__ = [
    "MASKS",
    "FullMask",
    "Mask",
    "MaskRequest",
    "OracleMask",
    "RandomMask",
    "apply_corruption",
    "build_mask",
]


@dataclass
class MaskRequest:
    """Everything a mask may look at for modality ``modality`` in one step.

    values, replacement: (B, D); y: (B,) labels; oracle: (k,) int64 coordinates or None;
    head: maps corrupted values (B, D) to the modality's unimodal logits (B, out_dim)
    (used by the learned mask only).
    """

    modality: str
    values: Tensor
    replacement: Tensor
    y: Tensor
    generator: torch.Generator
    training: bool
    oracle: Tensor | None = None
    head: Callable[[Tensor], Tensor] | None = None


class Mask(Protocol):
    def corruption(self, request: MaskRequest) -> Tensor:
        """(B, D) bool, or float weights in [0, 1]: how much of each element is replaced."""
        ...


def apply_corruption(values: Tensor, replacement: Tensor, weights: Tensor) -> Tensor:
    """(B, D) counterfactual values: bool weights select, float weights interpolate."""
    if weights.shape != values.shape or replacement.shape != values.shape:
        raise ValueError(
            f"weights: expected shape {tuple(values.shape)} like the values, "
            f"got {tuple(weights.shape)} and replacement {tuple(replacement.shape)}"
        )
    # A bool mask goes through lerp too: lerp is exact at weights 0 and 1 (it computes
    # end - diff * (1 - w) for w >= 0.5), and on CPU torch.where with an irregular bool mask is
    # about 6x slower than lerp, forward and backward (benchmarks/step_speed.py).
    return torch.lerp(values, replacement, weights.to(values.dtype))


class RandomMask:
    def __init__(self, prob: float) -> None:
        if not 0 < prob <= 1:
            raise ValueError(f"mask_prob: must be in (0, 1], got {prob}")
        self.prob = float(prob)

    def corruption(self, request: MaskRequest) -> Tensor:
        v = request.values
        return rand_from(tuple(v.shape), request.generator, v.device) < self.prob


class FullMask:
    def corruption(self, request: MaskRequest) -> Tensor:
        return torch.ones_like(request.values, dtype=torch.bool)


class OracleMask:
    def corruption(self, request: MaskRequest) -> Tensor:
        v = request.values
        weights = torch.zeros_like(v, dtype=torch.bool)
        idx = request.oracle
        if idx is None or idx.numel() == 0:
            return weights
        idx = idx.to(device=v.device, dtype=torch.long).reshape(-1)
        if int(idx.min()) < 0 or int(idx.max()) >= v.shape[1]:
            raise ValueError(
                f"oracle: coordinates of modality {request.modality!r} must lie in "
                f"0..{v.shape[1] - 1}, got {int(idx.min())}..{int(idx.max())} "
                "(oracle coordinates index the input; use mask_level='input')"
            )
        weights[:, idx] = True
        return weights


def _learned(config: TrainConfig) -> Mask:
    from synib_core.objectives.learned_mask import LearnedMask

    return LearnedMask.from_config(config)


MASKS: dict[str, Callable[[TrainConfig], Mask]] = {
    "random": lambda config: RandomMask(config.mask_prob),
    "full": lambda config: FullMask(),
    "oracle": lambda config: OracleMask(),
    "learned": _learned,
}


def build_mask(config: TrainConfig) -> Mask:
    """The mask named by ``config.mask`` (a key of MASKS), with its knobs."""
    builder = MASKS.get(config.mask)
    if builder is None:
        raise ValueError(f"mask: unknown {config.mask!r}; allowed: {', '.join(MASKS)}")
    return builder(config)
