"""The torch modules of the pretrained backbones: a loaded model plus its pooling, mapping
prepared inputs ``(x, lengths)`` to pooled features (B, output_dim).

They wrap models the ecosystem's loaders built (``transformers``, ``sentence-transformers``,
``resemblyzer``); nothing here re-implements a model. Every module has the ``Encoder``
signature ``forward(x, lengths=None)``, so ``build_model`` can put one in place of a
from-scratch encoder.

Pooling:
- ``mean``: the mean of the last layer's states over the valid positions (tokens within
  ``lengths``, mel frames within ``lengths``, every patch of an image);
- ``cls``: the first position's state (BERT's ``[CLS]``, ViT's class token). Resemblyzer's LSTM
  has no CLS token: ``cls`` is then the model's own utterance embedding (the top LSTM layer's
  state at the last valid frame, through its projection), ``mean`` the same projection of the
  mean state over the valid frames.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from synib_core.backbones.encoders import Encoder

__all__ = ["HFImageModule", "HFTextModule", "PretrainedModule", "VoiceModule", "valid_mask"]


def valid_mask(lengths: Tensor | None, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B, T) bool, True at the valid positions (all when ``lengths`` is None); lengths are
    clamped to [1, T] so an empty sample still pools one position."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    valid = lengths.to(device=device, dtype=torch.long).clamp(1, steps)
    return torch.arange(steps, device=device)[None, :] < valid[:, None]


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """(B, T, H) states, (B, T) bool mask -> (B, H) mean over the True positions."""
    keep = mask.unsqueeze(-1).to(states.dtype)
    return (states * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class PretrainedModule(Encoder):
    """Base: ``forward(x, lengths=None) -> (B, out_dim)``; ``model`` is the wrapped network and
    ``pooling`` is ``"mean"`` or ``"cls"``."""

    out_dim: int
    pooling: str
    model: nn.Module

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class HFTextModule(PretrainedModule):
    """A transformers text model: token ids (B, L) (any dtype; rounded to int64) and lengths (B,)
    -> (B, hidden). ``normalize``: L2-normalise the pooled vector (the sentence-transformers
    pipeline ends with a ``Normalize`` module, as all-MiniLM-L6-v2's does)."""

    def __init__(self, model: nn.Module, out_dim: int, pooling: str, normalize: bool) -> None:
        super().__init__()
        self.model, self.out_dim, self.pooling, self.normalize = model, out_dim, pooling, normalize

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        ids = x.round().long() if x.is_floating_point() else x.long()  # (B, L)
        mask = valid_mask(lengths, ids.shape[0], ids.shape[1], ids.device)  # (B, L)
        states = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        pooled = states[:, 0] if self.pooling == "cls" else masked_mean(states, mask)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled  # (B, hidden)


class HFImageModule(PretrainedModule):
    """A transformers image model: pixel values (B, C, H, W) -> (B, hidden). Token models (ViT):
    mean over all tokens or the class token; convolutional models (last state (B, C, h, w)): the
    spatial mean, or the model's ``pooler_output`` for ``cls``."""

    def __init__(self, model: nn.Module, out_dim: int, pooling: str) -> None:
        super().__init__()
        self.model, self.out_dim, self.pooling = model, out_dim, pooling

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        out: Any = self.model(pixel_values=x.float())
        states = out.last_hidden_state
        if states.dim() == 4:  # (B, C, h, w): no tokens
            if self.pooling == "cls" and getattr(out, "pooler_output", None) is not None:
                return out.pooler_output.flatten(1)
            return states.mean(dim=(2, 3))
        return states[:, 0] if self.pooling == "cls" else states.mean(1)  # (B, hidden)


class VoiceModule(PretrainedModule):
    """Resemblyzer's voice encoder: mel frames (B, T, 40) and lengths (B,) -> (B, 256) unit-norm
    embeddings through its LSTM, linear projection and ReLU (see the module docstring for the
    pooling)."""

    def __init__(self, encoder: nn.Module, out_dim: int, pooling: str) -> None:
        super().__init__()
        self.model = encoder  # resemblyzer.VoiceEncoder: .lstm, .linear, .relu
        self.out_dim, self.pooling = out_dim, pooling

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        voice: Any = self.model
        mels = x.float()  # (B, T, 40)
        steps = mels.shape[1]
        mask = valid_mask(lengths, mels.shape[0], steps, mels.device)
        valid = mask.sum(1)  # (B,)
        packed = pack_padded_sequence(mels, valid.cpu(), batch_first=True, enforce_sorted=False)
        out, (hidden, _) = voice.lstm(packed)  # hidden: (layers, B, 256), batch order kept
        if self.pooling == "cls":
            state = hidden[-1]
        else:
            states, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
            state = masked_mean(states, mask)  # (B, 256)
        return F.normalize(voice.relu(voice.linear(state)), dim=-1)
