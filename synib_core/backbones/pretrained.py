"""Pretrained encoders: load a registered model from local files, prepare raw inputs for it,
choose what trains, and extract frozen features.

``load_pretrained(info, path)`` loads a ``synib_spec.backbones.ModelInfo`` with its ecosystem's
loader (``pretrained_loaders``; nothing is downloaded) and returns a ``PretrainedBackbone``:

- ``prepare(raw, lengths, rate) -> {"x": ..., "lengths": ...}``: deterministic preprocessing,
  text (N,) str -> token ids (N, L) int64 + lengths (N,) (L = the longest text, at most
  ``MAX_TOKENS``); audio (N, T) float waveforms at ``rate`` Hz -> mel frames (N, F, 40) +
  lengths; images (N, C, H, W) in [0, 1] -> pixel values (N, C, H', W') (no lengths);
- ``module(x, lengths) -> (B, output_dim)``, pooled with ``module.pooling`` (mean | cls);
- ``set_trainable("frozen" | "last_layers" | "full")``.

``extract_features`` runs a frozen backbone over a whole modality in batches; ``EncoderChoice``
tells ``build_model`` how to encode one modality (a from-scratch encoder, or a pretrained model
that is frozen (its cached features arrive as (N, D) vectors, read by an ``mlp`` head) or trains
in the trial).

Example:
    >>> info = PACKAGED_MODELS[0][0]  # all-minilm-l6-v2 (synib_spec.backbones)  # doctest: +SKIP
    >>> backbone = load_pretrained(info, None)  # None: the package's own files
    >>> extract_features(backbone, np.array(["a cat", "a dog"]), pooling="mean").shape
    (2, 384)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from synib_core.backbones.encoders import ENCODERS, Encoder
from synib_core.backbones.pretrained_loaders import MAX_TOKENS, load_model
from synib_core.backbones.pretrained_modules import PretrainedModule
from synib_core.config import KnobError, TrainConfig
from synib_spec.backbones import POOLINGS, TRAIN_MODES, ModelInfo

__all__ = [
    "MAX_TOKENS",
    "EncoderChoice",
    "PretrainedBackbone",
    "build_choice_encoder",
    "extract_features",
    "load_pretrained",
    "set_trainable",
]

LAYER_LISTS = ("layer", "layers", "h", "blocks")  # names of the stacks of transformer blocks
HEAD_MODULES = ("pooler", "layernorm", "final_layer_norm", "ln_f")  # after the last block


def _last_block(model: nn.Module) -> list[nn.Module]:
    """The modules ``last_layers`` trains: the last block of the model's largest stack of
    transformer blocks (or the last layer of an LSTM) and any pooler / final norm after it."""
    if isinstance(getattr(model, "lstm", None), nn.LSTM):  # resemblyzer: LSTM + projection
        linear: nn.Module = getattr(model, "linear")  # noqa: B009 (typed as a Module here)
        return [linear]  # the LSTM's last layer is selected by parameter name
    stacks = [
        mod
        for name, mod in model.named_modules()
        if isinstance(mod, nn.ModuleList) and len(mod) > 0 and name.split(".")[-1] in LAYER_LISTS
    ]
    if not stacks:
        raise ValueError(f"{type(model).__name__}: no stack of layers found for 'last_layers'")
    biggest = max(stacks, key=lambda s: sum(p.numel() for p in s.parameters()))
    heads = [mod for name, mod in model.named_children() if name in HEAD_MODULES]
    return [biggest[-1], *heads]


def set_trainable(module: PretrainedModule, train: str) -> None:
    """Set ``requires_grad`` of the wrapped model's parameters: ``frozen`` none, ``full`` all,
    ``last_layers`` the last block (``_last_block``; for an LSTM its top layer's weights and
    the projection)."""
    if train not in TRAIN_MODES:
        raise ValueError(f"train: expected one of {', '.join(TRAIN_MODES)}, got {train!r}")
    model = module.model
    for p in model.parameters():
        p.requires_grad_(train == "full")
    if train != "last_layers":
        return
    for mod in _last_block(model):
        for p in mod.parameters():
            p.requires_grad_(True)
    lstm = getattr(model, "lstm", None)
    if isinstance(lstm, nn.LSTM):
        top = f"_l{lstm.num_layers - 1}"
        for name, p in lstm.named_parameters():
            p.requires_grad_(name.endswith(top))


@dataclass
class PretrainedBackbone:
    """A loaded pretrained model: ``prepare`` (raw -> arrays), ``module`` (arrays -> (B, D))."""

    info: ModelInfo
    module: PretrainedModule
    prepare_fn: Callable[[np.ndarray, np.ndarray | None, int | None], dict[str, np.ndarray]]

    def prepare(
        self, raw: np.ndarray, lengths: np.ndarray | None = None, rate: int | None = None
    ) -> dict[str, np.ndarray]:
        """Deterministic preprocessing of N raw samples: {"x": (N, ...), "lengths"?: (N,)}."""
        if len(raw) == 0:
            raise ValueError("raw: no samples to prepare")
        return self.prepare_fn(np.asarray(raw), lengths, rate)

    def set_trainable(self, train: str) -> None:
        set_trainable(self.module, train)


def load_pretrained(
    info: ModelInfo, path: str | os.PathLike[str] | None = None, pooling: str = "mean"
) -> PretrainedBackbone:
    """Load ``info`` from ``path`` (its folder; None: the package's own files), frozen, in eval
    mode, with ``pooling``."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
    loaded = load_model(info, path)
    loaded.module.pooling = pooling
    loaded.module.eval()
    backbone = PretrainedBackbone(info, loaded.module, loaded.prepare)
    backbone.set_trainable("frozen")
    return backbone


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def extract_features(
    backbone: PretrainedBackbone,
    raw: np.ndarray,
    lengths: np.ndarray | None = None,
    rate: int | None = None,
    *,
    pooling: str = "mean",
    batch_size: int = 64,
    device: str = "cpu",
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, output_dim) float32 features of N raw samples (``prepare`` per batch, then the module
    under ``torch.inference_mode``). ``on_batch(done, total)`` after every batch (progress)."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
    target = _device(device)
    module = backbone.module.to(target).eval()
    module.pooling = pooling
    n = len(raw)
    out = np.empty((n, backbone.info.output_dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            part = None if lengths is None else np.asarray(lengths)[start:stop]
            prepared = backbone.prepare(np.asarray(raw)[start:stop], part, rate)
            x = torch.as_tensor(prepared["x"], device=target)
            lens = prepared.get("lengths")
            valid = None if lens is None else torch.as_tensor(lens, device=target)
            out[start:stop] = module(x, valid).float().cpu().numpy()
            if on_batch is not None:
                on_batch(stop, n)
    return out


@dataclass(frozen=True)
class EncoderChoice:
    """How ``build_model`` encodes one modality: ``encoder`` is an ``ENCODERS`` name or
    ``"pretrained"``; a pretrained one names its ``model`` (a ModelInfo), the local ``path`` of
    its files (None: packaged), ``train`` and ``pooling``."""

    encoder: str
    model: ModelInfo | None = None
    path: str | None = None
    train: str = "frozen"
    pooling: str = "mean"

    @property
    def trains_in_trial(self) -> bool:
        """A pretrained model fine-tuned inside the trial (its inputs are prepared arrays)."""
        return self.encoder == "pretrained" and self.train != "frozen"

    def to_json(self) -> dict[str, Any]:
        model = None if self.model is None else self.model.to_json()
        return {"encoder": self.encoder, "model": model, "path": self.path,
                "train": self.train, "pooling": self.pooling}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EncoderChoice:
        model = raw.get("model")
        return cls(
            encoder=str(raw["encoder"]),
            model=None if model is None else ModelInfo.from_json(model),
            path=raw.get("path"),
            train=str(raw.get("train", "frozen")),
            pooling=str(raw.get("pooling", "mean")),
        )


def build_choice_encoder(
    choice: EncoderChoice, shape: tuple[int, ...], config: TrainConfig
) -> Encoder:
    """The encoder of one modality: a frozen pretrained model's cached features (D,) get the
    ``mlp`` head; a pretrained model that trains is loaded here (its files must be on this
    node) with ``set_trainable(choice.train)``; any other name is built from ``ENCODERS``."""
    if choice.encoder != "pretrained":
        if choice.encoder not in ENCODERS:
            raise KnobError("encoder", f"unknown encoder {choice.encoder!r}")
        return ENCODERS[choice.encoder](shape, config)
    if choice.train == "frozen":
        return ENCODERS["mlp"](shape, config)
    if choice.model is None:
        raise KnobError("backbones", "a pretrained encoder that trains needs its model")
    backbone = load_pretrained(choice.model, choice.path, choice.pooling)
    backbone.set_trainable(choice.train)
    return backbone.module
