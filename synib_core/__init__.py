"""SynIB core library: objectives, backbones, data, metrics and training (torch + numpy only).

Heavy submodules load lazily, so ``import synib_core`` is instant and torch is imported only when
a model, an objective or the training loop is first touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fit": "synib_core.training",
    "train_references": "synib_core.training",
    "FitResult": "synib_core.training",
    "TrainConfig": "synib_core.config",
    "load": "synib_core.checkpoint",
    "load_npz": "synib_core.data",
    "save_npz": "synib_core.data",
    "MultimodalData": "synib_core.data",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synib_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["__version__", *_LAZY]
