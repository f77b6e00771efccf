"""Per-epoch training checkpoints: everything needed to resume a run bit for bit.

One file, ``<checkpoint_dir>/train_state.pt``, replaced atomically after every epoch. It holds
the model, optimiser, scheduler, AMP scaler and objective states, every RNG state (global torch,
CUDA, the shuffling and the mask generators), the epoch and step counters, the best state so far
and the history, plus a run key so that a checkpoint of another run is never resumed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["CHECKPOINT_FILE", "ProgressState", "load_train_state", "run_key", "save_train_state"]

CHECKPOINT_FILE = "train_state.pt"


@dataclass
class ProgressState:
    """Loop bookkeeping: ``epoch`` is the last finished epoch (0 before the first)."""

    epoch: int = 0
    step: int = 0
    best_val: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, Tensor] = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def consider(self, val_acc: float, model_state: dict[str, Tensor]) -> bool:
        """Record the epoch just finished; return True (and keep a copy) when it is the best."""
        if val_acc > self.best_val:
            self.best_val, self.best_epoch, self.bad_epochs = val_acc, self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model_state.items()}
            return True
        self.bad_epochs += 1
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "history": copy.deepcopy(self.history),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProgressState:
        return cls(**d)


def run_key(knobs: dict[str, Any], method: str, seed: int, fingerprint: str) -> str:
    """sha256 identifying a run; a checkpoint is resumed only by the same run.

    ``device`` and ``patience`` are left out: they do not change what an epoch computes.
    """
    same = {k: v for k, v in knobs.items() if k not in ("patience", "device")}
    text = json.dumps([same, method, seed, fingerprint], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def save_train_state(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/train_state.pt`` atomically (temp file + rename)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    final = d / CHECKPOINT_FILE
    tmp = d / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, final)
    return final


def load_train_state(directory: str | Path, key: str) -> dict[str, Any] | None:
    """The saved state of run ``key`` in ``directory``, or None when there is none.

    Raises ValueError when the directory holds the checkpoint of a different run.
    """
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("run_key") != key:
        raise ValueError(
            f"checkpoint_dir: {path} belongs to a different run (config, method, seed or "
            "dataset differ); use an empty directory"
        )
    return state
