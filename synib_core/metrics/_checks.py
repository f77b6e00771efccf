"""Shape checks shared by the metric functions (raise ValueError naming the argument)."""

from __future__ import annotations

import numpy as np


def as_labels(name: str, values: np.ndarray, n: int | None = None) -> np.ndarray:
    """values as (N,) int64; ValueError if not 1-d integers, or not n long."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected shape (N,), got {arr.shape}")
    if arr.size and arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integer class ids, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} entries to match y, got {arr.shape[0]}")
    return arr.astype(np.int64)


def as_probs(name: str, probs: np.ndarray, n: int | None = None) -> np.ndarray:
    """probs as (N, K) float64 with K >= 2; ValueError otherwise."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{name}: expected shape (N, K) with K >= 2, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows to match y, got {arr.shape[0]}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name}: probabilities must be finite and >= 0")
    return arr


def non_empty(name: str, arr: np.ndarray) -> None:
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: needs at least one sample, got 0")
