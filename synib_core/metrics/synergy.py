"""Synergy metrics (docs/METHOD.md): unimodal-reference groups, per-group accuracy,
counterfactual confidence."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from synib_core.metrics._checks import as_labels, as_probs, non_empty


def unimodal_groups(ref_preds: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, np.ndarray]:
    """Test-sample groups from unimodal reference predictions.

    ref_preds: modality -> (N,) argmax prediction of that modality's reference model; y: (N,).
    Returns (N,) bool masks: `synergy` (every reference wrong), `redundant` (every reference
    right) and `unique_<m>` (only m's reference right). With M > 2 modalities some samples fall
    in none of them.
    Example: refs a=[0,1,1], b=[0,0,1], y=[0,1,0] -> synergy [F,F,T], redundant [T,F,F],
    unique_a [F,T,F], unique_b [F,F,F].
    """
    y = as_labels("y", y)
    if len(ref_preds) < 1:
        raise ValueError("ref_preds: needs at least one modality")
    right = {m: as_labels(f"ref_preds[{m!r}]", p, y.shape[0]) == y for m, p in ref_preds.items()}
    stacked = np.stack(list(right.values()))  # (M, N)
    n_right = stacked.sum(axis=0)
    groups = {"synergy": n_right == 0, "redundant": n_right == len(right)}
    for m, ok in right.items():
        groups[f"unique_{m}"] = ok & (n_right == 1)
    return groups


def strict_synergy_mask(
    ref_preds_per_seed: list[Mapping[str, np.ndarray]], y: np.ndarray
) -> np.ndarray:
    """(N,) bool: wrong under every unimodal reference of every seed (the strict synergy subset).

    ref_preds_per_seed: one {modality: (N,) prediction} dict per seed; y: (N,).
    """
    if not ref_preds_per_seed:
        raise ValueError("ref_preds_per_seed: needs at least one seed")
    masks = [unimodal_groups(refs, y)["synergy"] for refs in ref_preds_per_seed]
    return np.logical_and.reduce(masks)


def group_accuracies(pred: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Accuracy of pred (N,) against y (N,) inside each distinct label of groups (N,) (str or int).

    Example: pred [0,1,1], y [0,1,0], groups ["s","s","r"] -> {"r": 0.0, "s": 1.0}.
    """
    y = as_labels("y", y)
    pred = as_labels("pred", pred, y.shape[0])
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups: expected shape {y.shape} to match y, got {groups.shape}")
    correct = pred == y
    names = groups.astype(str)
    return {str(g): float(correct[names == g].mean()) for g in np.unique(names)}


def counterfactual_confidence(probs: np.ndarray) -> float:
    """Mean KL(q || uniform) = mean(sum_k q_k log(K q_k)) over the rows of probs (N, K), in nats.

    0 for uniform rows, log K for one-hot rows. Example: [[1, 0]] -> log 2 = 0.693...
    """
    probs = as_probs("probs", probs)
    non_empty("probs", probs)
    k = probs.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(k * probs), 0.0)  # 0 log 0 = 0
    return float(terms.sum(axis=1).mean())
