"""TEMPORARY stand-in for the models branch's ``worker/model_registry.py`` (interface 3 of
issue #23): the packaged models whose module is installed, fingerprint sha256 of
``<package>==<version>``. The models branch's module (model folders under SYNIB_MODEL_DIR too)
replaces this file when it merges."""

from __future__ import annotations

import hashlib
import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from synib_spec.backbones import PACKAGED_MODELS, ModelInfo

__all__ = ["discover_models"]


def discover_models(model_dir: Path | None) -> list[ModelInfo]:
    """The installed packaged models (looked up, not imported); ``model_dir`` is not read."""
    found = []
    for info, module in PACKAGED_MODELS:
        if importlib.util.find_spec(module) is None:
            continue
        try:
            release = version(info.source)
        except PackageNotFoundError:
            release = "unknown"
        digest = hashlib.sha256(f"{info.source}=={release}".encode()).hexdigest()
        found.append(ModelInfo(**{**info.to_json(), "fingerprint": digest}))
    return found
