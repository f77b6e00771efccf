"""The multimodal model every method trains: per-modality encoders, a fusion head, and one
linear unimodal head per modality.

Example:
    >>> spec = DataSpec(("a", "b"), {"a": (8,), "b": (8,)}, num_classes=2)
    >>> model = build_model(TrainConfig(hidden=16, fusion_hidden=16), spec, "synib")
    >>> from synib_core.objectives.base import Batch
    >>> batch = Batch(x={"a": torch.randn(4, 8), "b": torch.randn(4, 8)}, y=torch.zeros(4))
    >>> model(batch).shape, to_probs(model(batch)).shape
    (torch.Size([4, 1]), torch.Size([4, 2]))
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synib_core.backbones.encoders import Encoder
from synib_core.backbones.fusions import FUSIONS, Fusion
from synib_core.backbones.pretrained import EncoderChoice, build_choice_encoder
from synib_core.config import METHODS, KnobError, TrainConfig, method_reads
from synib_spec.knobs import resolve_feature_norm
from synib_spec.modality_kinds import RAW_KINDS

if TYPE_CHECKING:  # the Batch class lives with the objectives; imported lazily to avoid a cycle
    from synib_core.objectives.base import Batch

__all__ = [
    "METHOD_FUSIONS",
    "ModelSpecLike",
    "MultimodalModel",
    "build_model",
    "check_no_raw_modalities",
    "resolved_feature_norm",
    "to_probs",
]

# Methods whose fused prediction is part of the method (the ``fusion`` knob is not read):
# ensemble and reconboost sum one learner per modality, mla shares one head across modalities.
METHOD_FUSIONS = {"ensemble": "sum_unimodal", "reconboost": "sum_unimodal", "mla": "shared_head"}


class ModelSpecLike(Protocol):
    """What ``build_model`` reads from a spec (``synib_core.data.DataSpec`` satisfies it)."""

    @property
    def modalities(self) -> tuple[str, ...]: ...
    @property
    def shapes(self) -> Mapping[str, tuple[int, ...]]: ...
    @property
    def num_classes(self) -> int: ...


class MultimodalModel(nn.Module):
    """Encoders + fusion + unimodal heads. ``out_dim`` is 1 for binary tasks (one logit)."""

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        fusion: Fusion,
        num_classes: int,
        feature_norm: bool = True,
        backbones: Mapping[str, EncoderChoice] | None = None,
    ) -> None:
        super().__init__()
        # modality -> EncoderChoice of the modalities built from a backbone spec (bundles keep it)
        self.backbones: dict[str, EncoderChoice] = dict(backbones or {})
        self.modalities: tuple[str, ...] = tuple(encoders)
        self.num_classes = num_classes
        self.out_dim = 1 if num_classes == 2 else num_classes
        self.encoders = nn.ModuleDict(dict(encoders))
        self.heads = nn.ModuleDict(
            {m: nn.Linear(enc.out_dim, self.out_dim) for m, enc in encoders.items()}
        )
        self.fusion = fusion
        self.feature_norm = feature_norm

    def feature_dim(self, m: str) -> int:
        """H_m, the width of modality m's feature."""
        encoder: Encoder = self.encoders[m]  # type: ignore[assignment]
        return encoder.out_dim

    def encode(self, m: str, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Modality m's feature: (B, ...) -> (B, H_m), after a parameter-free LayerNorm unless
        the model was built with ``feature_norm="none"`` (input-level masks only)."""
        h = self.encoders[m](x, lengths)  # (B, H_m)
        return F.layer_norm(h, (h.shape[-1],)) if self.feature_norm else h

    def encode_all(self, batch: Batch) -> dict[str, Tensor]:
        """{m: (B, H_m)} for every modality of the model."""
        return {m: self.encode(m, batch.x[m], batch.lengths.get(m)) for m in self.modalities}

    def unimodal_logits(self, m: str, z: Tensor) -> Tensor:
        """Linear head of modality m on its feature: (B, H_m) -> (B, out_dim)."""
        return self.heads[m](z)

    def fuse(self, feats: dict[str, Tensor]) -> Tensor:
        """Fused logits (B, out_dim) from {m: (B, H_m)}."""
        if self.fusion.uses_unimodal_logits:
            return self.fusion({m: self.unimodal_logits(m, z) for m, z in feats.items()})
        return self.fusion(feats)

    def forward(self, batch: Batch) -> Tensor:
        return self.fuse(self.encode_all(batch))


def to_probs(logits: Tensor) -> Tensor:
    """Class probabilities in float32: (B, 1) -> sigmoid -> (B, 2); (B, K) -> softmax (B, K)."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        p = torch.sigmoid(logits)  # (B, 1): P(y = 1)
        return torch.cat([1 - p, p], dim=-1)  # (B, 2)
    return torch.softmax(logits, dim=-1)


def _check_spec(spec: ModelSpecLike) -> None:
    if len(spec.modalities) < 1:
        raise ValueError("spec.modalities: at least one modality is needed")
    for m in spec.modalities:
        if not m or "." in m or not m.isidentifier():
            raise ValueError(f"modality name {m!r}: use letters, digits and underscores only")
        if m not in spec.shapes:
            raise ValueError(f"spec.shapes: no shape for modality {m!r}")
    if spec.num_classes < 2:
        raise ValueError(f"spec.num_classes: need at least 2 classes, got {spec.num_classes}")


def check_no_raw_modalities(spec: ModelSpecLike, encoder: str, skip: Collection[str] = ()) -> None:
    """KnobError naming ``backbones.<m>.encoder`` when modality m (not in ``skip``: those with
    a backbone of their own) holds raw text or audio (``DataSpec.kinds``): only a pretrained
    model of that modality reads it, the trained-from-scratch ``encoder`` cannot."""
    kinds: Mapping[str, str] = getattr(spec, "kinds", None) or {}
    for m in spec.modalities:
        if m not in skip and kinds.get(m) in RAW_KINDS:
            raise KnobError(
                f"backbones.{m}.encoder",
                f"modality {m!r} holds raw {kinds[m]}, which the {encoder!r} encoder cannot "
                f"read; use backbones.{m}.encoder=pretrained with a {kinds[m]} model "
                "(GET /api/v1/models lists them)",
            )


def resolved_feature_norm(config: TrainConfig) -> str:
    """``"layernorm"`` or ``"none"``: the knob's value, ``auto`` resolved from ``mask_level``
    (``synib_spec.knobs.resolve_feature_norm``)."""
    return resolve_feature_norm(config.to_knobs())


def _check_backbones(
    config: TrainConfig, method: str, spec: ModelSpecLike, backbones: Mapping[str, EncoderChoice]
) -> None:
    unknown = sorted(set(backbones) - set(spec.modalities))
    if unknown:
        raise KnobError(
            "backbones", f"unknown modalities {unknown}; the data has {spec.modalities}"
        )
    trained = [m for m, c in backbones.items() if c.trains_in_trial]
    if trained and config.mask_level == "input" and method_reads(method, "mask_level"):
        raise KnobError(
            "mask_level",
            f"input-level masks cannot corrupt the prepared inputs (token ids, mel frames) of "
            f"the pretrained encoder of {trained[0]!r}; use mask_level='feature'",
        )


def build_model(
    config: TrainConfig,
    spec: ModelSpecLike,
    method: str,
    backbones: Mapping[str, EncoderChoice] | None = None,
) -> MultimodalModel:
    """Build the model for ``method``; ``spec`` gives modalities, per-sample shapes
    ((D,) | (T, D) | (C, H, W)) and num_classes. ``METHOD_FUSIONS`` fixes the fusion of some
    methods (``ensemble``: ``sum_unimodal``). ``backbones``: modality -> ``EncoderChoice`` for
    the modalities that do not use the ``encoder`` knob (a pretrained model: see
    ``synib_core.backbones.pretrained``).

    Weights are initialised from the global torch RNG (seed it, or fork it, before calling).
    """
    if method not in METHODS:
        raise KnobError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    _check_spec(spec)
    backbones = dict(backbones or {})
    _check_backbones(config, method, spec, backbones)
    check_no_raw_modalities(spec, config.encoder, skip=backbones)
    encoders = {
        m: build_choice_encoder(
            backbones.get(m, EncoderChoice(config.encoder)), tuple(spec.shapes[m]), config
        )
        for m in spec.modalities
    }
    out_dim = 1 if spec.num_classes == 2 else spec.num_classes
    fusion_name = METHOD_FUSIONS.get(method, config.fusion)
    fusion = FUSIONS[fusion_name]({m: e.out_dim for m, e in encoders.items()}, out_dim, config)
    norm = resolved_feature_norm(config)
    return MultimodalModel(
        encoders, fusion, spec.num_classes, feature_norm=norm == "layernorm", backbones=backbones
    )
