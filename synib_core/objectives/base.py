"""Data classes and the base class shared by every objective.

An objective turns (model, batch, step context) into a loss (``Objective.loss``) and applies its
gradients (``Objective.backward``). The model is anything offering the model contract
(``ModelLike`` below); the training loop owns the optimiser.

Example:
    >>> obj = build_objective("synib", TrainConfig(lam=10.0), data.spec())   # doctest: +SKIP
    >>> out = obj.loss(model, batch, ctx); obj.backward(out, model); opt.step()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "Batch",
    "ModelLike",
    "Objective",
    "ObjectiveConfigError",
    "ObjectiveOutput",
    "SpecLike",
    "StepContext",
]


class ObjectiveConfigError(ValueError):
    """A configuration the objective cannot run with: ``field`` names the knob, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class Batch:
    """One mini-batch.

    x: modality -> (B, D) | (B, T, D) | (B, C, H, W) float tensors;
    y: (B,) int64 labels; lengths: modality -> (B,) int64 valid steps (sequence modalities only);
    index: (B,) int64 row indices into the split the batch was drawn from.
    """

    x: dict[str, Tensor]
    y: Tensor
    lengths: dict[str, Tensor] = field(default_factory=dict)
    index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(
            x={m: t.to(device) for m, t in self.x.items()},
            y=self.y.to(device),
            lengths={m: t.to(device) for m, t in self.lengths.items()},
            index=self.index.to(device),
        )

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class StepContext:
    """What an objective may know about the current step besides the batch.

    epoch: 1-based epoch; num_epochs: planned epochs; step: global optimiser step (0-based);
    generator: the RNG for masks and fills (the only randomness objectives use);
    train_prior: (K,) label marginal of the training split; oracle: modality -> (k,) int64
    coordinate indices into the flattened per-sample input; training: False during evaluation;
    substep: which of the objective's ``updates_per_batch`` optimiser updates of this batch
    (0-based; always 0 for objectives that make one update per batch).
    """

    epoch: int
    num_epochs: int
    step: int
    generator: torch.Generator
    train_prior: Tensor
    oracle: dict[str, Tensor] = field(default_factory=dict)
    training: bool = True
    substep: int = 0


@dataclass
class ObjectiveOutput:
    """Result of ``Objective.loss``.

    loss: scalar tensor to back-propagate; logits: (B, out_dim) fused logits on the intact batch
    (detach before storing); logs: scalar diagnostics (``ce``, ``penalty``, ``uni``, ``lambda``...);
    aux: per-step tensors an objective's own ``backward`` needs (e.g. per-modality losses).
    """

    loss: Tensor
    logits: Tensor
    logs: dict[str, float]
    aux: dict[str, Any] = field(default_factory=dict)


class ModelLike(Protocol):
    """The model contract, as the objectives see it (``backbones.MultimodalModel`` meets it)."""

    @property
    def modalities(self) -> tuple[str, ...]: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def out_dim(self) -> int: ...

    def encode(self, m: str, x: Tensor, lengths: Tensor | None = None) -> Tensor: ...

    def encode_all(self, batch: Batch) -> dict[str, Tensor]: ...

    def fuse(self, feats: dict[str, Tensor]) -> Tensor: ...

    def unimodal_logits(self, m: str, z: Tensor) -> Tensor: ...


class SpecLike(Protocol):
    """What an objective reads from the dataset spec (``synib_core.data.DataSpec``)."""

    @property
    def modalities(self) -> tuple[str, ...]: ...

    @property
    def num_classes(self) -> int: ...


class Objective:
    """Base class: subclasses implement ``loss``; ``backward`` defaults to ``loss.backward()``.

    Two optional hooks serve baselines whose rule is not one loss per batch: ``updates_per_batch``
    (the loop calls loss/backward/optimiser step that many times per batch, with
    ``ctx.substep`` counting them: alternating updates) and ``begin_epoch`` (called before each
    training epoch with the whole training and validation splits: per-epoch diagnostics).
    """

    name: str = "objective"
    updates_per_batch: int = 1

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        """Loss of one batch. model: the Model contract; batch: B samples; ctx: step context."""
        raise NotImplementedError

    def backward(self, out: ObjectiveOutput, model: ModelLike, scaler: Any = None) -> None:
        """Back-propagate ``out.loss`` (through ``scaler.scale`` when an AMP GradScaler is given)."""
        loss = out.loss if scaler is None else scaler.scale(out.loss)
        loss.backward()

    def begin_epoch(self, model: ModelLike, epoch: int, train: Batch, val: Batch) -> None:
        """Before training epoch ``epoch`` (1-based); train / val: the whole splits. No-op."""
        del model, epoch, train, val

    def state_dict(self) -> dict[str, Any]:
        """Objective state to checkpoint (e.g. running fill statistics); empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        del state
