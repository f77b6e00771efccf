"""Fusion heads: ``FUSIONS[name](feat_dims, out_dim, config) -> Fusion``.

A fusion maps the per-modality features {m: (B, H_m)} to fused logits (B, out_dim).
``sum_unimodal`` (used by the ``ensemble`` method) has no parameters: it sums the logits of the
model's unimodal heads, which the model passes in place of the features.

Example:
    >>> fus = FUSIONS["concat_mlp"]({"a": 4, "b": 6}, 3, TrainConfig(fusion_hidden=8))
    >>> fus({"a": torch.randn(2, 4), "b": torch.randn(2, 6)}).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from synib_core.backbones.encoders import _mlp_stack, pick_heads
from synib_core.config import KnobError, TrainConfig

__all__ = [
    "FUSIONS",
    "ConcatMLPFusion",
    "Fusion",
    "FusionConfig",
    "SharedHeadFusion",
    "SumUnimodalFusion",
    "TransformerFusion",
]


class Fusion(nn.Module):
    """Base class: ``forward(feats: {m: (B, H_m)}) -> (B, out_dim)``."""

    uses_unimodal_logits: bool = False

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class FusionConfig:
    feat_dims: dict[str, int]  # modality -> H_m, in the model's modality order
    out_dim: int
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.0


class ConcatMLPFusion(Fusion):
    """Concatenate the features, ``layers`` hidden Linear+ReLU blocks, then a linear output."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.order = tuple(cfg.feat_dims)
        self.body = _mlp_stack(sum(cfg.feat_dims.values()), cfg.hidden, cfg.layers, cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.out_dim)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        z = torch.cat([feats[m] for m in self.order], dim=-1)  # (B, sum_m H_m)
        return self.out(self.body(z))  # (B, hidden) -> (B, out_dim)


class TransformerFusion(Fusion):
    """One token per modality (projected to ``hidden``, plus a modality embedding) and a CLS
    token; a transformer encoder; the CLS output goes through a linear layer."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.order = tuple(cfg.feat_dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, cfg.hidden) for m, d in cfg.feat_dims.items()})
        n_tokens = len(self.order) + 1
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.hidden))
        self.type_emb = nn.Parameter(torch.randn(1, n_tokens, cfg.hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden,
            pick_heads(cfg.hidden),
            dim_feedforward=2 * cfg.hidden,
            dropout=cfg.dropout,
            batch_first=True,
        )
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.hidden, cfg.out_dim)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        tokens = [self.proj[m](feats[m]) for m in self.order]  # M x (B, hidden)
        batch = tokens[0].shape[0]
        seq = torch.cat([self.cls.expand(batch, -1, -1), torch.stack(tokens, 1)], 1)  # (B, M+1, h)
        h = self.body(seq + self.type_emb)  # (B, M + 1, hidden)
        return self.out(h[:, 0])  # CLS token: (B, hidden) -> (B, out_dim)


class SumUnimodalFusion(Fusion):
    """Fused logits = sum of the unimodal heads' logits {m: (B, out_dim)} -> (B, out_dim)."""

    uses_unimodal_logits = True

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.order = tuple(cfg.feat_dims)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        return torch.stack([feats[m] for m in self.order], dim=0).sum(0)  # (M, B, K) -> (B, K)


class SharedHeadFusion(Fusion):
    """One linear head shared by every modality (the ``mla`` method): logits_m = head(z_m);
    the fused logits are sum_m w_m logits_m with per-sample weights w = softmax_m(-H(p_m)), the
    entropy H of each modality's predicted distribution p_m (the most certain modality weighs
    most: exp(max_j H_j - H_m) normalised). Given one modality it returns that modality's logits.
    """

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        widths = sorted(set(cfg.feat_dims.values()))
        if len(widths) != 1:
            raise KnobError(
                "encoder",
                f"the shared head of mla needs one feature width for every modality, got "
                f"{dict(cfg.feat_dims)}: use an encoder of fixed width (hidden), not identity",
            )
        self.order = tuple(cfg.feat_dims)
        self.head = nn.Linear(widths[0], cfg.out_dim)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        names = [m for m in self.order if m in feats]
        logits = torch.stack([self.head(feats[m]) for m in names])  # (M, B, out_dim)
        if len(names) == 1:
            return logits[0]
        z = logits.float()
        if z.shape[-1] == 1:  # binary: one logit, p(y = 1) = sigmoid(z)
            log_p = torch.cat([F.logsigmoid(-z), F.logsigmoid(z)], dim=-1)  # (M, B, 2)
        else:
            log_p = torch.log_softmax(z, dim=-1)  # (M, B, K)
        entropy = -(log_p.exp() * log_p).sum(-1)  # (M, B)
        weights = torch.softmax(-entropy, dim=0)  # (M, B), sums to 1 over modalities
        return (weights[..., None] * logits).sum(0)  # (B, out_dim)


def _config(feat_dims: dict[str, int], out_dim: int, cfg: TrainConfig) -> FusionConfig:
    return FusionConfig(dict(feat_dims), out_dim, cfg.fusion_hidden, cfg.fusion_layers, cfg.dropout)


FusionBuilder = Callable[[dict[str, int], int, TrainConfig], Fusion]

FUSIONS: dict[str, FusionBuilder] = {
    "concat_mlp": lambda dims, k, cfg: ConcatMLPFusion(_config(dims, k, cfg)),
    "transformer": lambda dims, k, cfg: TransformerFusion(_config(dims, k, cfg)),
    "sum_unimodal": lambda dims, k, cfg: SumUnimodalFusion(_config(dims, k, cfg)),
    "shared_head": lambda dims, k, cfg: SharedHeadFusion(_config(dims, k, cfg)),
}
