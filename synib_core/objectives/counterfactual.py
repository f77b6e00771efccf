"""Leave-one-out counterfactuals: f(x~_m, x_-m) for every modality m in ONE fusion call.

``mask_level = "feature"``: modality m's encoder output z_m (B, H) is corrupted directly, so the
encoders run once per step. ``"input"``: the raw input of m, flattened per sample to (B, D), is
corrupted and only m's encoder reruns; the other modalities' features are reused.

The M counterfactual feature sets are concatenated along the batch, giving (M * B, H) per
modality, fused once and split back into M blocks of B rows (ordered like ``model.modalities``).

Randomness, in order: the swap permutation (once per step, when the fill swaps), then per
modality the fill draws and the mask draws, all from ``ctx.generator``.

Gradients: with the learned mask (training) every feature entering the counterfactual pass is
detached, so the penalty reaches the fusion head only; otherwise it reaches the encoders.

Example:
    >>> cf = CounterfactualBuilder.from_config(config)
    >>> logits = cf.logits(model, batch, model.encode_all(batch), ctx)   # m -> (B, out_dim)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from synib_core.config import TrainConfig
from synib_core.objectives.base import Batch, ModelLike, StepContext
from synib_core.objectives.fills import Fill, FillStep, build_fill, swap_permutation
from synib_core.objectives.learned_mask import LearnedMask
from synib_core.objectives.masks import (
    Mask,
    MaskRequest,
    OracleMask,
    apply_corruption,
    build_mask,
)
from synib_spec.knobs import resolve_fill

__all__ = ["LEVELS", "CounterfactualBuilder", "fuse_counterfactuals"]

LEVELS = ("feature", "input")


def fuse_counterfactuals(
    model: ModelLike, feats: dict[str, Tensor], cf: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Fused logits with modality m replaced by cf[m], for every m in cf, in one ``fuse`` call.

    feats: modality -> (B, H) intact features; cf: m -> (B, H) counterfactual features of m.
    Returns m -> (B, out_dim).
    """
    order = list(cf)
    batch_size = next(iter(feats.values())).shape[0]
    # each modality j: (M * B, H), block k holds cf[j] if j is the k-th corrupted modality
    stacked = {j: torch.cat([cf[m] if m == j else z for m in order]) for j, z in feats.items()}
    logits = model.fuse(stacked)  # (M * B, out_dim)
    return dict(zip(order, logits.split(batch_size), strict=True))


class CounterfactualBuilder:
    """Builds x~_m for every modality with one mask, one fill and one level."""

    def __init__(self, *, mask: Mask, fill: Fill, level: str = "feature") -> None:
        if level not in LEVELS:
            raise ValueError(f"mask_level: unknown {level!r}; allowed: {', '.join(LEVELS)}")
        self.mask, self.fill, self.level = mask, fill, level

    @classmethod
    def from_config(cls, config: TrainConfig) -> CounterfactualBuilder:
        return cls(
            mask=build_mask(config),
            fill=build_fill(resolve_fill(config.to_knobs()), config.noise_std),
            level=config.mask_level,
        )

    def detaches(self, ctx: StepContext) -> bool:
        """True when the counterfactual pass must see detached features (learned, training)."""
        return isinstance(self.mask, LearnedMask) and ctx.training

    def features(
        self, model: ModelLike, batch: Batch, feats: dict[str, Tensor], ctx: StepContext
    ) -> dict[str, Tensor]:
        """m -> (B, H) counterfactual features of modality m (m corrupted, nothing else)."""
        self._check_oracle(model, ctx)
        batch_size = len(batch)
        device = batch.y.device
        perm = swap_permutation(batch_size, ctx.generator, device) if self.fill.needs_perm else None
        step = FillStep(generator=ctx.generator, perm=perm, training=ctx.training)
        detach = self.detaches(ctx)
        out: dict[str, Tensor] = {}
        for m in model.modalities:
            values, head, decode = self._view(model, batch, feats, m)
            if detach:
                values = values.detach()
            replacement = self.fill.replacement(m, values, step)
            request = MaskRequest(
                modality=m,
                values=values,
                replacement=replacement,
                y=batch.y,
                generator=ctx.generator,
                training=ctx.training,
                oracle=ctx.oracle.get(m),
                head=head,
            )
            z = decode(apply_corruption(values, replacement, self.mask.corruption(request)))
            out[m] = z.detach() if detach else z
        return out

    def logits(
        self, model: ModelLike, batch: Batch, feats: dict[str, Tensor], ctx: StepContext
    ) -> dict[str, Tensor]:
        """m -> (B, out_dim) fused logits f(x~_m, x_-m), one batched fusion call."""
        cf = self.features(model, batch, feats, ctx)
        if self.detaches(ctx):
            feats = {m: z.detach() for m, z in feats.items()}
        return fuse_counterfactuals(model, feats, cf)

    def _view(
        self, model: ModelLike, batch: Batch, feats: dict[str, Tensor], m: str
    ) -> tuple[Tensor, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
        """(values (B, D), head: values -> unimodal logits, decode: values -> features (B, H))."""
        if self.level == "feature":

            def identity(z: Tensor) -> Tensor:
                return z

            return feats[m], lambda z: model.unimodal_logits(m, z), identity
        x = batch.x[m]
        lengths = batch.lengths.get(m)

        def decode(flat: Tensor) -> Tensor:
            return model.encode(m, flat.reshape(x.shape), lengths)  # (B, ...) -> (B, H)

        return x.reshape(x.shape[0], -1), lambda v: model.unimodal_logits(m, decode(v)), decode

    def _check_oracle(self, model: ModelLike, ctx: StepContext) -> None:
        if not isinstance(self.mask, OracleMask):
            return
        if not any(
            ctx.oracle.get(m) is not None and ctx.oracle[m].numel() > 0 for m in model.modalities
        ):
            raise ValueError(
                "mask: 'oracle' needs the dataset's oracle coordinates (oracle_<modality> arrays); "
                "this dataset declares none"
            )
