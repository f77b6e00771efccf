"""What training hands back: per-epoch reports, the final result, and the divergence error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synib_core.backbones import MultimodalModel
from synib_core.config import TrainConfig

__all__ = ["EpochReport", "FitResult", "TrainingDiverged"]


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite at ``epoch`` (1-based), optimiser ``step`` (0-based)."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(
            f"training diverged: loss is {value} at epoch {epoch}, step {step} "
            "(try a lower lr or lambda)"
        )
        self.epoch = epoch
        self.step = step
        self.value = value


@dataclass
class EpochReport:
    """One finished epoch: ``metrics`` holds train_loss, val_acc, test_acc, epoch_seconds.

    ``is_best``: this epoch is the best so far by val_acc; ``best_epoch``: the best so far.
    """

    epoch: int
    metrics: dict[str, float]
    is_best: bool = False
    best_epoch: int = 0


@dataclass
class FitResult:
    """Outcome of ``fit``.

    best_epoch: 1-based epoch selected by val_acc; metrics: the metric vocabulary at that epoch;
    history: one metrics dict per epoch run; model: the selected model in eval mode;
    test_probs: (N_test, K) float32 fused test probabilities of the selected model, calibrated
    with ``temperature`` (for per-sample comparisons such as the paired bootstrap);
    stopped_early: patience ran out; temperature: T > 0 fitted on the validation split (the
    logits are divided by it in ``test_probs`` and in the saved bundle's ``predict_proba``).
    """

    best_epoch: int
    metrics: dict[str, float]
    history: list[dict[str, float]]
    model: MultimodalModel
    config: TrainConfig
    method: str
    spec: Any  # synib_core.data.DataSpec
    dataset_fingerprint: str
    test_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    stopped_early: bool = False
    temperature: float = 1.0

    @property
    def test_pred(self) -> np.ndarray:
        """(N_test,) int64 predicted classes of the selected model."""
        return self.test_probs.argmax(axis=1).astype(np.int64)

    def save(self, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write the model bundle (see ``synib_core.checkpoint.save_bundle``) to ``path``."""
        from synib_core.checkpoint import save_bundle

        return save_bundle(
            path,
            self.model,
            self.config,
            self.method,
            self.spec,
            self.metrics,
            self.dataset_fingerprint,
            extra=extra,
            temperature=self.temperature,
        )
