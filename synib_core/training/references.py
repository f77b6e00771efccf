"""Unimodal reference models for the synergy metrics (docs/METHOD.md).

One model per modality: the same encoder as the multimodal model plus a linear head, trained
with cross-entropy on that modality alone, with the same budget (epochs, optimiser, early
stopping on its own validation accuracy) and the same seed.

Example:
    >>> refs = train_references(TrainConfig(epochs=5), data, seed=0)     # doctest: +SKIP
    >>> result = fit(config, data, method="synib", references=refs)
    >>> result.metrics["synergy_acc"]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from synib_core.backbones import EncoderChoice, MultimodalModel
from synib_core.config import TrainConfig
from synib_core.data import MultimodalData
from synib_core.objectives.base import Batch, ModelLike, Objective, ObjectiveOutput, StepContext
from synib_core.objectives.losses import cross_entropy
from synib_core.training.loop import run_training

__all__ = ["UnimodalCE", "single_modality", "train_references"]


class UnimodalCE(Objective):
    """CE of the single-modality model's logits (its fusion is the unimodal head)."""

    name = "unimodal_ce"

    def loss(self, model: ModelLike, batch: Batch, ctx: StepContext) -> ObjectiveOutput:
        assert isinstance(model, MultimodalModel)
        logits = model(batch)  # (B, out_dim): the head of the only modality
        loss = cross_entropy(logits, batch.y)
        return ObjectiveOutput(loss=loss, logits=logits.detach(), logs={"ce": float(loss.detach())})


def single_modality(data: MultimodalData, m: str) -> MultimodalData:
    """``data`` restricted to modality ``m`` (same rows, splits, labels and groups)."""
    if m not in data.x:
        raise ValueError(f"modality: {m!r} is not in the data ({', '.join(data.x)})")
    return dataclasses.replace(
        data,
        x={m: data.x[m]},
        oracle={k: v for k, v in data.oracle.items() if k == m},
        lengths={k: v for k, v in data.lengths.items() if k == m},
    )


def train_references(
    config: TrainConfig,
    data: MultimodalData,
    *,
    seed: int,
    progress: bool = False,
    backbones: Mapping[str, EncoderChoice] | None = None,
) -> dict[str, np.ndarray]:
    """Train one unimodal model per modality; return modality -> (N_test,) int64 test
    predictions (argmax) of each model at its best validation epoch. ``backbones``: as in
    ``fit`` (each reference uses its modality's encoder)."""
    preds: dict[str, np.ndarray] = {}
    for m in data.x:
        result = run_training(
            config,
            single_modality(data, m),
            method="ensemble",  # sum_unimodal fusion over one modality = that modality's head
            objective=UnimodalCE(),
            seed=seed,
            progress=progress,
            test_each_epoch=False,  # only the best epoch's test predictions are used
            backbones={k: c for k, c in (backbones or {}).items() if k == m},
        )
        preds[m] = result.test_pred
    return preds
