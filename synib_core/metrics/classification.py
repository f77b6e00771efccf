"""Accuracy, macro-F1 and expected calibration error of a fused prediction (numpy in, float out)."""

from __future__ import annotations

import numpy as np

from synib_core.metrics._checks import as_labels, as_probs, non_empty


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Share of pred (N,) equal to y (N,). Example: accuracy([0, 1, 1], [0, 1, 0]) == 2 / 3."""
    y = as_labels("y", y)
    pred = as_labels("pred", pred, y.shape[0])
    non_empty("y", y)
    return float(np.mean(pred == y))


def macro_f1(pred: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in y (N,) or pred (N,).

    Classes in 0..num_classes-1 absent from both are left out (as scikit-learn's
    f1_score(average="macro") does); a class with no true positive has F1 = 0.
    """
    y = as_labels("y", y)
    pred = as_labels("pred", pred, y.shape[0])
    non_empty("y", y)
    if num_classes < 2:
        raise ValueError(f"num_classes: must be >= 2, got {num_classes}")
    for name, arr in (("y", y), ("pred", pred)):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(f"{name}: class ids must be in 0..{num_classes - 1}")
    true_pos = np.bincount(y[pred == y], minlength=num_classes).astype(np.float64)
    n_true = np.bincount(y, minlength=num_classes)
    n_pred = np.bincount(pred, minlength=num_classes)
    present = (n_true + n_pred) > 0
    f1 = 2 * true_pos[present] / (n_true[present] + n_pred[present])
    return float(f1.mean())


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """ECE of probs (N, K) against y (N,): sum over equal-width confidence bins (lo, hi] of
    |bin| / N * |accuracy(bin) - mean confidence(bin)|, confidence = max probability.

    Example: probs [[0.9, 0.1], [0.6, 0.4]], y [0, 1], 2 bins -> (|1 - 0.9| + |0 - 0.6|) / 2 = 0.35.
    """
    y = as_labels("y", y)
    probs = as_probs("probs", probs, y.shape[0])
    non_empty("y", y)
    if n_bins < 1:
        raise ValueError(f"n_bins: must be >= 1, got {n_bins}")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    # bin b holds confidences in (b/n_bins, (b+1)/n_bins]; a confidence of 0 goes to bin 0
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / y.shape[0])
