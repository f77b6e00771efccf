"""Raw inputs for a model bundle whose modalities use pretrained encoders.

A bundle trained on a frozen pretrained model holds only the head that reads the model's
features; the encoder itself is referenced by name and fingerprint (``bundle.json``'s
``backbones``), not copied. A fine-tuned one holds the encoder's weights but still needs the
model's own preprocessing (its tokenizer, its mel frames). ``encode_raw_inputs`` turns what a
user has (strings, waveforms, images) into what the bundle's model reads, with the model
installed on this machine (``synib_spec.model_registry``: the packaged models, or the folders
under ``model_dir``), after checking that it is the very model the bundle was trained with.

Example:
    >>> model = synib_core.load("model.zip")                               # doctest: +SKIP
    >>> model.predict({"text": np.array(["what a lovely day"]), "voice": wav[None]},
    ...               lengths={"voice": np.array([len(wav)])}, rates={"voice": 22050})
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from synib_core.backbones.pretrained import (
    EncoderChoice,
    PretrainedBackbone,
    extract_features,
    load_pretrained,
)
from synib_core.data.npz import uint8_images
from synib_spec.backbones import ModelInfo
from synib_spec.model_registry import discover_models, model_folder

__all__ = ["RawInputError", "encode_raw_inputs", "installed_model", "is_raw"]


class RawInputError(ValueError):
    """A raw input cannot be encoded: ``field`` names it (``x['text']``, ``rates``, ...)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def is_raw(arr: Any, shape: tuple[int, ...]) -> bool:
    """Whether ``arr`` is raw data rather than the (N, *shape) array the model reads: strings,
    uint8 images, or a per-sample shape other than ``shape``."""
    a = np.asarray(arr)
    return a.dtype.kind in "US" or a.dtype == np.uint8 or tuple(a.shape[1:]) != tuple(shape)


def installed_model(wanted: ModelInfo, model_dir: str | os.PathLike[str] | None) -> ModelInfo:
    """The model of this machine that is ``wanted`` (same name and fingerprint); RawInputError
    naming it when it is not installed or differs."""
    here = {m.name: m for m in discover_models(None if model_dir is None else Path(model_dir))}
    found = here.get(wanted.name)
    if found is None:
        where = f"in {model_dir}" if model_dir is not None else "(pass model_dir=)"
        raise RawInputError(
            "backbones",
            f"the bundle's encoder {wanted.name!r} ({wanted.source}) is not installed here "
            f"{where}; installed: {sorted(here) or 'none'}",
        )
    if wanted.fingerprint and found.fingerprint != wanted.fingerprint:
        raise RawInputError(
            "backbones",
            f"the installed {wanted.name!r} (fingerprint {found.fingerprint[:12]}) is not the one "
            f"the bundle was trained with ({wanted.fingerprint[:12]}): its features would differ",
        )
    return found


def _encode_one(
    m: str,
    choice: EncoderChoice,
    raw: np.ndarray,
    lengths: np.ndarray | None,
    rate: int | None,
    model_dir: str | os.PathLike[str] | None,
    loaded: dict[tuple[str, str], PretrainedBackbone],
) -> tuple[np.ndarray, np.ndarray | None]:
    assert choice.model is not None
    if choice.model.modality == "audio" and rate is None:
        raise RawInputError("rates", f"modality {m!r} is raw audio: give rates={{{m!r}: Hz}}")
    key = (m, str(model_dir))
    if key not in loaded:  # once per model and modality, not on every predict call
        info = installed_model(choice.model, model_dir)
        loaded[key] = load_pretrained(info, model_folder(info), choice.pooling)
    backbone = loaded[key]
    if choice.train == "frozen":  # the head reads the model's pooled features
        return extract_features(backbone, raw, lengths, rate, pooling=choice.pooling), None
    prepared = backbone.prepare(raw, lengths, rate)  # the fine-tuned encoder reads these
    lens = prepared.get("lengths")
    return np.asarray(prepared["x"], dtype=np.float32), None if lens is None else np.asarray(lens)


def encode_raw_inputs(
    backbones: Mapping[str, EncoderChoice],
    shapes: Mapping[str, tuple[int, ...]],
    x: Mapping[str, Any],
    lengths: Mapping[str, Any] | None = None,
    rates: Mapping[str, int] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    loaded: dict[tuple[str, str], PretrainedBackbone] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(x, lengths) with every raw input of a pretrained modality encoded as the bundle's model
    reads it, and uint8 images of the other modalities as float32 (N, C, H, W) in [0, 1] (as
    the dataset loader gives them to training); other inputs pass unchanged.

    backbones: the bundle's modality -> EncoderChoice; shapes: the per-sample shapes the model
    reads; x: modality -> (N, ...) arrays (text: (N,) strings; audio: (N, T) float waveforms;
    images: uint8 (N, H, W, C) or (N, C, H, W)); lengths: modality -> (N,) valid steps (audio:
    valid samples); rates: audio modality -> sample rate in Hz; model_dir: where folder models
    are installed (``SYNIB_MODEL_DIR`` on a worker); loaded: the pretrained models already
    loaded, by (modality, model_dir), filled here (the caller keeps it across calls).
    """
    out_x, out_lengths = dict(x), dict(lengths or {})
    loaded = {} if loaded is None else loaded
    for m, arr in x.items():
        pretrained = m in backbones and backbones[m].encoder == "pretrained"
        if not pretrained and np.asarray(arr).dtype == np.uint8 and np.ndim(arr) == 4:
            out_x[m] = uint8_images(np.asarray(arr))  # as the dataset loader reads them
    for m, choice in backbones.items():
        if choice.encoder != "pretrained" or m not in out_x:
            continue
        if not is_raw(out_x[m], tuple(shapes.get(m, ()))):
            continue  # already features / prepared arrays
        given = out_lengths.pop(m, None)
        arr, lens = _encode_one(
            m,
            choice,
            np.asarray(out_x[m]),
            None if given is None else np.asarray(given),
            None if rates is None else rates.get(m),
            model_dir,
            loaded,
        )
        out_x[m] = arr
        if lens is not None:
            out_lengths[m] = lens.astype(np.int64)
    return out_x, out_lengths
