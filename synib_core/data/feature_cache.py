"""An on-disk cache of extracted features, keyed by a fingerprint of what was extracted and how.

The real-signal generators (``speech_irony``, ``digit_speech``) synthesise speech and run
pretrained encoders; that is done once per machine and stored as one ``.npy`` file per bank of
items. The key is the sha256 of the extractor's identity (name and the versions of the tools it
used) and the exact list of item specifications, so a new tool version or a changed bank gives a
new file, never a stale one.

Where: the ``cache_dir`` argument when given, else ``$SYNIB_CACHE_DIR``, else
``~/.cache/synib``; the files live in its ``features/`` folder.

Example:
    >>> feats = cached_features("double", ["1", "2"], {"v": 1},
    ...                         lambda items: np.array([[2.0 * float(i)] for i in items]))
    >>> feats.shape
    (2, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CACHE_ENV",
    "cache_key",
    "cached_features",
    "default_cache_dir",
    "with_features",
]

CACHE_ENV = "SYNIB_CACHE_DIR"


def default_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$SYNIB_CACHE_DIR``, else ``~/.cache/synib``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "synib"


def cache_key(kind: str, items: Sequence[str], identity: Mapping[str, Any]) -> str:
    """sha256 hex of the extractor ``kind``, its ``identity`` (tool versions) and the items."""
    blob = json.dumps({"kind": kind, "identity": identity, "items": list(items)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_features(
    kind: str,
    items: Sequence[str],
    identity: Mapping[str, Any],
    compute: Callable[[Sequence[str]], np.ndarray],
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """(len(items), D) float32 features of ``items``: read from the cache, or ``compute(items)``
    once and stored (atomically: a temporary file renamed into place).

    kind: the extractor's name (part of the file name); identity: what decides the values besides
    the items (tool and model versions); compute: items -> (len(items), D) array.
    """
    if not items:
        raise ValueError("items: the feature bank is empty")
    key = cache_key(kind, items, identity)
    folder = default_cache_dir(cache_dir) / "features"
    path = folder / f"{kind}-{key[:24]}.npy"
    if path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.shape[0] == len(items):
            return cached
    feats = np.ascontiguousarray(compute(items), dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] != len(items):
        raise ValueError(f"compute: expected ({len(items)}, D) features, got {feats.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, feats, allow_pickle=False)
    os.replace(tmp, path)
    return feats


def with_features(fingerprint: str, *banks: np.ndarray) -> str:
    """``fingerprint`` extended with the sha256 of the feature banks, so that data generated with
    other tool versions (other features) never shares a fingerprint."""
    digest = hashlib.sha256(fingerprint.encode())
    for bank in banks:
        digest.update(np.ascontiguousarray(bank, dtype=np.float32).tobytes())
    return digest.hexdigest()
