"""`summarize`: every test metric of the vocabulary from one model's test outputs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from synib_core.metrics._checks import as_labels, as_probs
from synib_core.metrics.classification import accuracy, expected_calibration_error, macro_f1
from synib_core.metrics.synergy import counterfactual_confidence, group_accuracies, unimodal_groups


def summarize(
    probs: np.ndarray,
    y: np.ndarray,
    *,
    ref_preds: Mapping[str, np.ndarray] | None = None,
    groups: np.ndarray | None = None,
    cf_probs: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Test metrics with vocabulary names (ARCHITECTURE.md "Metric names").

    probs: (N, K) fused test probabilities; y: (N,); ref_preds: modality -> (N,) unimodal
    reference predictions; groups: (N,) ground-truth group labels; cf_probs: modality -> (N, K)
    probabilities with that modality corrupted.
    Gives test_acc, test_macro_f1, test_ece; with ref_preds synergy_n and synergy_acc,
    redundant_acc, unique_<m>_acc; with groups group_<name>_acc; with cf_probs cf_conf_<m>.
    An accuracy over an empty subset is left out (synergy_n is always given), never NaN.
    """
    y = as_labels("y", y)
    probs = as_probs("probs", probs, y.shape[0])
    pred = probs.argmax(axis=1)
    out = {
        "test_acc": accuracy(pred, y),
        "test_macro_f1": macro_f1(pred, y, max(probs.shape[1], int(y.max()) + 1)),
        "test_ece": expected_calibration_error(probs, y),
    }
    if ref_preds is not None:
        correct = pred == y
        for name, member in unimodal_groups(ref_preds, y).items():
            if name == "synergy":
                out["synergy_n"] = float(member.sum())
            if member.any():
                out[f"{name}_acc"] = float(correct[member].mean())
    if groups is not None:
        for name, acc in group_accuracies(pred, y, groups).items():
            out[f"group_{name}_acc"] = acc
    for m, cf in (cf_probs or {}).items():
        out[f"cf_conf_{m}"] = counterfactual_confidence(
            as_probs(f"cf_probs[{m!r}]", cf, y.shape[0])
        )
    return out
