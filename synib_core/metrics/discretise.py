"""Discretise each modality into a few states for the information estimates of ``pid.py``:
k-means clusters of the standardised rows, with a fixed seed.

How many clusters (``default_clusters``): k = floor(sqrt(N / (20 * K))) for N samples and K
classes, clipped to [2, 20]. Then the joint table of (state_1, state_2, label) has
k^2 * K <= N / 20 cells: on average at least 20 samples per cell, which keeps the upward bias
of the plug-in estimate of I(Y; X_1, X_2) (about (cells - 1) (K - 1) / (2 N ln 2) bits, Miller
1955) under 1 / (40 ln 2) = 0.036 bits, and the solver small. Pass ``clusters`` to override it.

A modality whose rows take at most ``clusters`` distinct values (bits, codes, categories) is
used as it is: each distinct row is one state (k-means would find exactly those).

Example:
    >>> default_clusters(10_000, 2)                                   # floor(sqrt(250))
    15
    >>> discretise(np.array([[0.0], [0.1], [5.0], [5.1]]), 2).tolist()  # two clear groups
    [0, 0, 1, 1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = [
    "KMEANS_RESTARTS",
    "MAX_CLUSTERS",
    "MIN_CLUSTERS",
    "SAMPLES_PER_CELL",
    "default_clusters",
    "discretise",
    "discretise_modalities",
]

MIN_CLUSTERS = 2
MAX_CLUSTERS = 20
SAMPLES_PER_CELL = 20
KMEANS_RESTARTS = 4  # k-means runs from different seeds; the lowest inertia wins


def default_clusters(n_samples: int, num_classes: int) -> int:
    """k = floor(sqrt(n_samples / (20 * num_classes))) clipped to [2, 20] (module docstring)."""
    if n_samples < 1:
        raise ValueError(f"n_samples: must be >= 1, got {n_samples}")
    if num_classes < 1:
        raise ValueError(f"num_classes: must be >= 1, got {num_classes}")
    k = math.isqrt(n_samples // (SAMPLES_PER_CELL * num_classes))
    return max(MIN_CLUSTERS, min(MAX_CLUSTERS, k))


def _rows(name: str, x: np.ndarray) -> np.ndarray:
    """x as (N, F) float64, one flattened row per sample."""
    arr = np.asarray(x)
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}")
    flat = arr.reshape(arr.shape[0], -1).astype(np.float64)
    if not np.isfinite(flat).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return flat


def discretise(x: np.ndarray, clusters: int, *, seed: int = 0, name: str = "x") -> np.ndarray:
    """(N,) int64 state ids 0..k'-1 (k' <= clusters, no empty state, numbered in the order
    they first occur) of the rows of x.

    x: (N,) or (N, ...) numbers, flattened per row. Columns are standardised (constant columns
    become 0) and clustered with scikit-learn's KMeans (``clusters`` centres, seed ``seed``,
    ``KMEANS_RESTARTS`` restarts); rows with at most ``clusters`` distinct values keep them.
    """
    if not clusters >= MIN_CLUSTERS:
        raise ValueError(f"clusters: must be >= {MIN_CLUSTERS}, got {clusters}")
    flat = _rows(name, x)
    distinct, states = np.unique(flat, axis=0, return_inverse=True)
    if distinct.shape[0] <= clusters:
        return _in_order_of_appearance(states.reshape(-1))
    from sklearn.cluster import KMeans  # scikit-learn comes with synib[core]

    std = flat.std(axis=0)
    scaled = (flat - flat.mean(axis=0)) / np.where(std > 0, std, 1.0)
    kmeans = KMeans(n_clusters=clusters, n_init=KMEANS_RESTARTS, random_state=seed)
    return _in_order_of_appearance(kmeans.fit_predict(scaled))


def _in_order_of_appearance(labels: np.ndarray) -> np.ndarray:
    """Relabel (N,) ints to 0..k'-1 in the order each label first occurs: [7, 7, 2] -> [0, 0, 1]."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.shape[0])
    return rank[inverse.reshape(-1)]


def discretise_modalities(
    x: Mapping[str, np.ndarray],
    num_classes: int,
    *,
    clusters: int | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each modality's (N,) int64 states (``discretise``); ``clusters`` None: the default rule
    for N samples and ``num_classes`` classes. x: modality -> (N, ...) with the same N."""
    if not x:
        raise ValueError("x: needs at least one modality")
    sizes = {m: np.asarray(a).shape[0] if np.asarray(a).ndim else 0 for m, a in x.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"x: every modality needs the same number of rows, got {sizes}")
    n = next(iter(sizes.values()))
    k = default_clusters(n, num_classes) if clusters is None else clusters
    return {m: discretise(a, k, seed=seed, name=f"x[{m!r}]") for m, a in x.items()}
