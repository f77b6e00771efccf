"""Which sweep point a method is reported at: the one rule the job report, ``synib compare``,
the API's ``best`` and ``synib download --best`` share.

A point's score is its mean validation accuracy over seeds (never a test number, never a
synergy subset). The highest score wins (the first one in sweep order on ties), with one
exception that keeps a comparison honest: when the sweep holds a point at which the method IS
its baseline (``lambda = 0``: SynIB without its penalty trains vanilla's model, bit for bit),
that point is kept unless the best point beats it by more than one standard error of a
validation accuracy, ``sqrt(p (1 - p) / (n_val * seeds))``. A penalty weight whose validation
gain is within that noise is not evidence that the penalty helps; measured on the reference
tasks, such picks lost up to 2 synergy points on test (docs/METHOD.md, "Selecting lambda").

Example:
    >>> best_point({"lambda=0": [0.90, 0.91], "lambda=1": [0.905, 0.912]},
    ...            null="lambda=0", n_val=400)
    'lambda=0'
    >>> best_point({"lambda=0": [0.90, 0.91], "lambda=1": [0.95, 0.96]},
    ...            null="lambda=0", n_val=400)
    'lambda=1'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SELECTION_METRIC", "best_point", "is_null_point", "noise_margin"]

SELECTION_METRIC = "val_acc"


def noise_margin(accuracy: float, n_val: int, seeds: int) -> float:
    """One standard error of a mean of ``seeds`` validation accuracies near ``accuracy`` on
    ``n_val`` samples (binomial): the smallest gain that counts as one."""
    if n_val < 1 or seeds < 1:
        raise ValueError(f"n_val and seeds must be >= 1, got {n_val} and {seeds}")
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / (n_val * seeds))


def is_null_point(method: str, point: Mapping[str, Any]) -> bool:
    """Whether ``method`` at sweep ``point`` trains its baseline's model: a penalty weight of 0
    for the methods that read ``lambda``."""
    from synib_spec.knobs import method_reads

    return method_reads(method, "lambda") and point.get("lambda") == 0


def best_point(
    scores: Mapping[str, Sequence[float]], *, null: str | None = None, n_val: int | None = None
) -> str | None:
    """The label of the reported point among ``scores`` (label -> validation accuracies, one per
    seed), or None when there is none. ``null``: the label of the baseline-equivalent point,
    kept unless beaten by more than ``noise_margin`` (needs ``n_val``, the validation size)."""
    means = {label: sum(v) / len(v) for label, v in scores.items() if len(v)}
    if not means:
        return None
    best = max(means, key=lambda label: means[label])  # first on ties (dict order)
    if null is None or null not in means or best == null or n_val is None:
        return best
    margin = noise_margin(means[null], n_val, len(scores[null]))
    return best if means[best] - means[null] > margin else null
