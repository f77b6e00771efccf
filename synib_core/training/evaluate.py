"""Evaluation: probabilities, accuracy, counterfactual probabilities, the temperature fit and
the final test metrics.

The counterfactual of modality m uses a fixed evaluation mask (docs/METHOD.md):
m's whole feature is replaced by another sample's (a fixed-seed permutation of the split, i.e.
full corruption with the swap fill); the other modalities stay intact. Counterfactual
confidences use the raw logits (T = 1): they measure what the penalty acted on.

Calibration: ``fit_split_temperature`` fits the temperature T on the validation split (every
method); the test metrics then report ``test_ece`` of the calibrated probabilities,
``test_ece_uncalibrated`` of the raw ones, and ``temperature``. Dividing logits by T > 0 keeps
every argmax, so accuracies and synergy metrics are those of the raw model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from synib_core.backbones import MultimodalModel, to_probs
from synib_core.metrics import (
    expected_calibration_error,
    fit_temperature,
    summarize,
    temperature_probs,
)
from synib_core.training.tensors import SplitTensors, iterate_batches

__all__ = [
    "CF_SEED",
    "counterfactual_probs",
    "features",
    "fit_split_temperature",
    "predict_logits",
    "predict_probs",
    "test_metrics",
]

EVAL_BATCH = 1024
CF_SEED = 1234  # the fixed seed of the evaluation permutation


@torch.no_grad()
def features(model: MultimodalModel, split: SplitTensors) -> dict[str, Tensor]:
    """{m: (N, H_m)} float32 features of the whole split (model in eval mode)."""
    model.eval()
    parts: dict[str, list[Tensor]] = {m: [] for m in model.modalities}
    for batch in iterate_batches(split, EVAL_BATCH, None):
        for m, z in model.encode_all(batch).items():
            parts[m].append(z.float())
    return {m: torch.cat(chunks) for m, chunks in parts.items()}


@torch.no_grad()
def _fuse_logits(model: MultimodalModel, feats: Mapping[str, Tensor]) -> np.ndarray:
    """Fused logits (N, out_dim) float32 from {m: (N, H_m)}, in chunks."""
    n = next(iter(feats.values())).shape[0]
    out = [
        model.fuse({m: z[s : s + EVAL_BATCH] for m, z in feats.items()}).float()
        for s in range(0, n, EVAL_BATCH)
    ]
    return torch.cat(out).cpu().numpy().astype(np.float32)


def predict_logits(model: MultimodalModel, split: SplitTensors) -> np.ndarray:
    """(N, out_dim) float32 fused logits of the split (out_dim 1 for a binary task)."""
    return _fuse_logits(model, features(model, split))


def fit_split_temperature(model: MultimodalModel, split: SplitTensors) -> float:
    """The temperature T minimising the NLL of the split's labels (see metrics.calibration)."""
    return fit_temperature(predict_logits(model, split), split.y.cpu().numpy())


@torch.no_grad()
def _fuse_probs(model: MultimodalModel, feats: Mapping[str, Tensor]) -> np.ndarray:
    """Fused probabilities (N, K) float32 from {m: (N, H_m)}, in chunks."""
    n = next(iter(feats.values())).shape[0]
    out = [
        to_probs(model.fuse({m: z[s : s + EVAL_BATCH] for m, z in feats.items()}))
        for s in range(0, n, EVAL_BATCH)
    ]
    return torch.cat(out).cpu().numpy().astype(np.float32)


def predict_probs(model: MultimodalModel, split: SplitTensors) -> np.ndarray:
    """(N, K) float32 fused probabilities of the split."""
    return _fuse_probs(model, features(model, split))


def accuracy_of(model: MultimodalModel, split: SplitTensors) -> float:
    """Fused accuracy on the split."""
    pred = predict_probs(model, split).argmax(axis=1)
    return float((pred == split.y.cpu().numpy()).mean())


def counterfactual_probs(
    model: MultimodalModel, feats: Mapping[str, Tensor], seed: int = CF_SEED
) -> dict[str, np.ndarray]:
    """{m: (N, K)} probabilities with modality m's feature swapped across samples.

    feats: {m: (N, H_m)}. The permutation is a random single cycle (no sample keeps its own
    feature when N >= 2) drawn from a CPU generator seeded with ``seed``.
    """
    n = next(iter(feats.values())).shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)  # sample order[i] takes the feature of sample order[i + 1]
    out = {}
    for m, z in feats.items():
        swapped = {**feats, m: z[perm.to(z.device)]}  # (N, H_m), rows permuted
        out[m] = _fuse_probs(model, swapped)
    return out


def test_metrics(
    model: MultimodalModel,
    test: SplitTensors,
    references: Mapping[str, np.ndarray] | None,
    temperature: float = 1.0,
) -> tuple[dict[str, float], np.ndarray]:
    """The metric vocabulary on the test split and the (N, K) calibrated test probabilities.

    references: modality -> (N_test,) unimodal reference predictions (synergy groups);
    temperature: T > 0 dividing the logits (``fit_split_temperature`` on validation).
    """
    feats = features(model, test)
    logits = _fuse_logits(model, feats)
    probs = temperature_probs(logits, temperature)
    y = test.y.cpu().numpy()
    metrics = summarize(
        probs,
        y,
        ref_preds=references,
        groups=test.group,
        cf_probs=counterfactual_probs(model, feats) if len(feats) > 1 else None,
    )
    metrics["test_ece_uncalibrated"] = expected_calibration_error(temperature_probs(logits, 1.0), y)
    metrics["temperature"] = float(temperature)
    return metrics, probs
