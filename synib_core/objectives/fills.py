"""What replaces a corrupted element of a counterfactual (docs/METHOD.md, ``fill``).

A fill maps the values of one modality, flattened per sample to (B, D), to replacement values of
the same shape; a mask then picks which elements take them. All randomness comes from the step's
``torch.Generator`` (drawn on the generator's device, then moved to the values' device).

- ``swap`` (default): the same coordinate of another sample, through one random permutation per
  step shared by all modalities. The permutation is a single cycle, so no sample keeps its own
  value (B >= 2) and every coordinate keeps its marginal multiset.
- ``noise``: N(0, noise_std^2).  ``zeros``: 0.
- ``ema``: N(mean, var) of running per-feature statistics (exponential moving average, momentum
  0.1, initialised from the first batch), updated from training batches only; before any
  training batch it uses the current batch's statistics without storing them.

Example:
    >>> perm = swap_permutation(4, torch.Generator().manual_seed(0), torch.device("cpu"))
    >>> SwapFill().replacement("a", x, FillStep(generator=g, perm=perm, training=True))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "FILLS",
    "EmaFill",
    "Fill",
    "FillStep",
    "NoiseFill",
    "SwapFill",
    "ZerosFill",
    "build_fill",
    "rand_from",
    "randn_from",
    "swap_permutation",
]


def rand_from(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """U[0, 1) float32 of ``shape`` drawn from ``generator`` (on its device), moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def randn_from(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """N(0, 1) float32 of ``shape`` drawn from ``generator``, moved to ``device``."""
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def swap_permutation(batch_size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """(B,) int64 permutation with no fixed point for B >= 2: a random single cycle.

    Sample order[i] takes its replacement from sample order[i + 1] (cyclically).
    """
    order = torch.randperm(batch_size, generator=generator, device=generator.device)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm.to(device)


@dataclass
class FillStep:
    """Per-step inputs of a fill: the RNG, the swap permutation (B,) or None, training flag."""

    generator: torch.Generator
    perm: Tensor | None
    training: bool


class Fill(Protocol):
    needs_perm: bool

    def replacement(self, m: str, values: Tensor, step: FillStep) -> Tensor:
        """values: (B, D) of modality m -> (B, D) replacement values."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _Stateless:
    needs_perm = False

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class SwapFill(_Stateless):
    needs_perm = True

    def replacement(self, m: str, values: Tensor, step: FillStep) -> Tensor:
        if step.perm is None or step.perm.shape[0] != values.shape[0]:
            raise ValueError("perm: the swap fill needs a permutation of the batch (B,)")
        return values[step.perm]


class NoiseFill(_Stateless):
    def __init__(self, std: float) -> None:
        if not std > 0:
            raise ValueError(f"noise_std: must be > 0, got {std}")
        self.std = float(std)

    def replacement(self, m: str, values: Tensor, step: FillStep) -> Tensor:
        noise = randn_from(tuple(values.shape), step.generator, values.device)
        return (noise * self.std).to(values.dtype)


class ZerosFill(_Stateless):
    def replacement(self, m: str, values: Tensor, step: FillStep) -> Tensor:
        return torch.zeros_like(values)


class EmaFill:
    """N(mean, var) of running per-feature statistics, one (D,) pair per modality."""

    needs_perm = False

    def __init__(self, momentum: float = 0.1) -> None:
        self.momentum = momentum
        self.mean: dict[str, Tensor] = {}
        self.var: dict[str, Tensor] = {}

    def update(self, m: str, values: Tensor) -> None:
        """Fold a training batch (B, D) into the running statistics of modality m."""
        v = values.detach().float()
        mean, var = v.mean(dim=0), v.var(dim=0, unbiased=False)
        if m not in self.mean or self.mean[m].shape != mean.shape:
            self.mean[m], self.var[m] = mean, var
            return
        self.mean[m] = self.mean[m].to(mean.device).lerp(mean, self.momentum)
        self.var[m] = self.var[m].to(var.device).lerp(var, self.momentum)

    def replacement(self, m: str, values: Tensor, step: FillStep) -> Tensor:
        if step.training:
            self.update(m, values)
        if m in self.mean and self.mean[m].shape[0] == values.shape[1]:
            mean, var = self.mean[m].to(values.device), self.var[m].to(values.device)
        else:
            v = values.detach().float()
            mean, var = v.mean(dim=0), v.var(dim=0, unbiased=False)
        noise = randn_from(tuple(values.shape), step.generator, values.device)
        return (mean + noise * var.clamp_min(0).sqrt()).to(values.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": {m: t.detach().cpu() for m, t in self.mean.items()},
            "var": {m: t.detach().cpu() for m, t in self.var.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = {m: t.clone() for m, t in state.get("mean", {}).items()}
        self.var = {m: t.clone() for m, t in state.get("var", {}).items()}


FILLS: dict[str, Callable[[float], Fill]] = {
    "swap": lambda noise_std: SwapFill(),
    "noise": NoiseFill,
    "zeros": lambda noise_std: ZerosFill(),
    "ema": lambda noise_std: EmaFill(),
}


def build_fill(name: str, noise_std: float = 1.0) -> Fill:
    """The fill called ``name`` (a key of FILLS); noise_std is used by ``noise`` only."""
    builder = FILLS.get(name)
    if builder is None:
        raise ValueError(f"fill: unknown {name!r}; allowed: {', '.join(FILLS)}")
    return builder(noise_std)
