"""Per-modality encoders: ``ENCODERS[name](in_shape, config) -> Encoder``.

Every encoder maps one modality's batch to (B, out_dim) and takes optional ``lengths`` (B,)
(used by the sequence encoders to ignore padding). Adding an encoder is one class, one config
dataclass and one registry line.

Example:
    >>> enc = ENCODERS["gru"]((12, 5), TrainConfig(hidden=8))
    >>> enc(torch.randn(3, 12, 5), torch.tensor([12, 4, 1])).shape
    torch.Size([3, 8])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from synib_core.config import KnobError, TrainConfig

__all__ = [
    "ENCODERS",
    "CNNEncoder",
    "CNNEncoderConfig",
    "Encoder",
    "GRUEncoder",
    "IdentityEncoder",
    "MLPEncoder",
    "MLPEncoderConfig",
    "SequenceEncoderConfig",
    "TransformerSeqEncoder",
]


class Encoder(nn.Module):
    """Base class: ``forward(x, lengths=None) -> (B, out_dim)``."""

    out_dim: int

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        raise NotImplementedError


def _mlp_stack(in_dim: int, width: int, layers: int, dropout: float) -> nn.Sequential:
    """``layers`` blocks of Linear -> ReLU -> Dropout: (B, in_dim) -> (B, width)."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU()]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
    return nn.Sequential(*blocks)


def pick_heads(width: int) -> int:
    """Largest of 8, 4, 2, 1 attention heads dividing ``width``."""
    return next(h for h in (8, 4, 2, 1) if width % h == 0)


@dataclass(frozen=True)
class MLPEncoderConfig:
    in_dim: int
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.0


class MLPEncoder(Encoder):
    """Vectors (B, D) (any trailing shape is flattened) -> (B, hidden)."""

    def __init__(self, cfg: MLPEncoderConfig) -> None:
        super().__init__()
        self.out_dim = cfg.hidden
        self.net = _mlp_stack(cfg.in_dim, cfg.hidden, cfg.layers, cfg.dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1))  # (B, ...) -> (B, D) -> (B, hidden)


class IdentityEncoder(Encoder):
    """Frozen features: no parameters, (B, D) -> (B, D) (a trailing shape is flattened)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return x.reshape(x.shape[0], -1)  # (B, ...) -> (B, D)


@dataclass(frozen=True)
class SequenceEncoderConfig:
    steps: int
    in_dim: int
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.0


def _valid_lengths(x: Tensor, lengths: Tensor | None) -> Tensor:
    """(B,) int64 lengths clamped to [1, T]; all T when ``lengths`` is None."""
    steps = x.shape[1]
    if lengths is None:
        return torch.full((x.shape[0],), steps, dtype=torch.long, device=x.device)
    return lengths.to(device=x.device, dtype=torch.long).clamp(1, steps)


class GRUEncoder(Encoder):
    """Sequences (B, T, D) -> last valid hidden state of the top layer (B, hidden)."""

    def __init__(self, cfg: SequenceEncoderConfig) -> None:
        super().__init__()
        self.out_dim = cfg.hidden
        self.gru = nn.GRU(
            cfg.in_dim,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        valid = _valid_lengths(x, lengths)
        packed = pack_padded_sequence(x, valid.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # h_n: (layers, B, hidden), in the input's batch order
        return h_n[-1]


class TransformerSeqEncoder(Encoder):
    """Sequences (B, T, D) -> masked mean of transformer outputs (B, hidden)."""

    def __init__(self, cfg: SequenceEncoderConfig) -> None:
        super().__init__()
        self.out_dim = cfg.hidden
        self.proj = nn.Linear(cfg.in_dim, cfg.hidden)
        self.pos = nn.Parameter(torch.zeros(1, cfg.steps, cfg.hidden))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden,
            pick_heads(cfg.hidden),
            dim_feedforward=2 * cfg.hidden,
            dropout=cfg.dropout,
            batch_first=True,
        )
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        steps = x.shape[1]
        valid = _valid_lengths(x, lengths)
        pad = torch.arange(steps, device=x.device)[None, :] >= valid[:, None]  # (B, T) True = pad
        h = self.proj(x) + self.pos[:, :steps]  # (B, T, D) -> (B, T, hidden)
        h = self.body(h, src_key_padding_mask=pad)  # (B, T, hidden)
        keep = (~pad).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * keep).sum(1) / keep.sum(1)  # (B, hidden)


@dataclass(frozen=True)
class CNNEncoderConfig:
    channels: int
    height: int
    width: int
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.0


class CNNEncoder(Encoder):
    """Small images (B, C, H, W) (or (B, H, W), one channel) -> (B, hidden).

    ``layers`` blocks of 3x3 conv -> ReLU -> 2x2 max-pool (while the image is larger than 1x1),
    then a global average pool.
    """

    def __init__(self, cfg: CNNEncoderConfig) -> None:
        super().__init__()
        self.out_dim = cfg.hidden
        self.channels = cfg.channels
        blocks: list[nn.Module] = []
        size = min(cfg.height, cfg.width)
        for i in range(cfg.layers):
            blocks += [nn.Conv2d(cfg.channels if i == 0 else cfg.hidden, cfg.hidden, 3, padding=1)]
            blocks.append(nn.ReLU())
            if size >= 2:
                blocks.append(nn.MaxPool2d(2))
                size //= 2
        self.body = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        h = self.body(x)  # (B, C, H, W) -> (B, hidden, H', W')
        return self.dropout(F.adaptive_avg_pool2d(h, 1).flatten(1))  # (B, hidden)


def _build_mlp(shape: tuple[int, ...], cfg: TrainConfig) -> Encoder:
    return MLPEncoder(MLPEncoderConfig(prod(shape), cfg.hidden, cfg.encoder_layers, cfg.dropout))


def _build_identity(shape: tuple[int, ...], cfg: TrainConfig) -> Encoder:
    return IdentityEncoder(prod(shape))


def _seq_config(name: str, shape: tuple[int, ...], cfg: TrainConfig) -> SequenceEncoderConfig:
    if len(shape) != 2:
        raise KnobError("encoder", f"{name!r} needs sequences (N, T, D); got per-sample {shape}")
    return SequenceEncoderConfig(shape[0], shape[1], cfg.hidden, cfg.encoder_layers, cfg.dropout)


def _build_gru(shape: tuple[int, ...], cfg: TrainConfig) -> Encoder:
    return GRUEncoder(_seq_config("gru", shape, cfg))


def _build_transformer(shape: tuple[int, ...], cfg: TrainConfig) -> Encoder:
    return TransformerSeqEncoder(_seq_config("transformer", shape, cfg))


def _build_cnn(shape: tuple[int, ...], cfg: TrainConfig) -> Encoder:
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise KnobError("encoder", f"'cnn' needs images (N, C, H, W); got per-sample {shape}")
    c, h, w = shape
    return CNNEncoder(CNNEncoderConfig(c, h, w, cfg.hidden, cfg.encoder_layers, cfg.dropout))


EncoderBuilder = Callable[[tuple[int, ...], TrainConfig], Encoder]

ENCODERS: dict[str, EncoderBuilder] = {
    "mlp": _build_mlp,
    "gru": _build_gru,
    "transformer": _build_transformer,
    "cnn": _build_cnn,
    "identity": _build_identity,
}
