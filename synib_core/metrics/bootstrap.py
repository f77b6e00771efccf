"""Paired bootstrap confidence interval of an accuracy difference over seeds."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np


def _as_matrix(name: str, arr: np.ndarray) -> np.ndarray:
    out = np.asarray(arr)
    if out.ndim == 1:
        out = out[None, :]
    if out.ndim != 2 or out.shape[1] == 0:
        raise ValueError(f"{name}: expected shape (S, N) or (N,) with N >= 1, got {out.shape}")
    if out.dtype.kind not in "biu":
        raise ValueError(f"{name}: expected bool correctness, got dtype {out.dtype}")
    return out.astype(np.float64)


def _subset_accuracy(correct: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S,) accuracy of each seed within its subset; correct/mask (S, N), every subset non-empty
    (``_checked``)."""
    return (correct * mask).sum(axis=1) / mask.sum(axis=1)


def paired_bootstrap_ci(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(delta, lo, hi): delta = mean over seeds of acc_a - acc_b, with a percentile bootstrap CI.

    correct_a, correct_b: (S, N) bool, per seed and test sample (or (N,) for one seed).
    mask: optional (S, N) or (N,) bool restricting each seed's accuracy to a subset (e.g. the
    per-seed synergy subset). The N test samples are resampled with replacement, the same draw
    for every seed and both methods (paired). A resample leaving a seed's subset empty ignores
    that seed. Example: paired_bootstrap_ci([[1, 1, 0]], [[1, 0, 0]]) -> (0.333..., lo, hi).
    """
    comparison = (correct_a, correct_b, mask)
    return paired_bootstrap_cis({"": comparison}, n_boot=n_boot, level=level, seed=seed)[""]


def paired_bootstrap_cis(
    comparisons: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """``paired_bootstrap_ci`` of several comparisons over the same N test samples, in one pass.

    comparisons: name -> (correct_a, correct_b, mask) as in ``paired_bootstrap_ci``. Every
    comparison sees the same resamples (those of ``paired_bootstrap_ci`` with this ``seed``), so
    each result equals that of its own call; drawing them once is the bulk of the work saved.
    """
    checked = {name: _checked(*c) for name, c in comparisons.items()}
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot/level: need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    sizes = {a.shape[1] for a, _, _ in checked.values()}
    if len(sizes) > 1:
        raise ValueError(f"comparisons: all need the same number of samples N, got {sorted(sizes)}")
    if not checked:
        return {}
    n = sizes.pop()
    names = list(checked)
    # One (N, 3 S) block per comparison: a's hits, b's hits and the subset, per seed. A
    # resample's counts times all blocks at once: integer sums, exact in float32 (N < 2**24).
    blocks = [np.hstack([(a * m).T, (b * m).T, m.T]) for a, b, m in checked.values()]
    stacked = np.hstack(blocks).astype(np.float32)
    width = [blk.shape[1] for blk in blocks]
    deltas = {name: np.empty(n_boot) for name in names}
    rng = np.random.default_rng(seed)
    # Resamples in chunks of about 2**20 draws (8 MB of int64): larger chunks were slower, not
    # faster, on a first call (0.38 s against 0.13 s for 2,000 x 4,000: each fresh block of
    # tens of MB is page-faulted in). The draws, so the CIs, do not depend on the chunk size.
    chunk = max(1, min(n_boot, (1 << 20) // n))
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draws = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        counts = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
        sums = (counts.astype(np.float32) @ stacked).astype(np.float64)
        for name, part in zip(names, np.split(sums, np.cumsum(width)[:-1], axis=1), strict=True):
            hits_a, hits_b, size = np.split(part, 3, axis=1)
            with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                # A resample may leave a seed's subset (or every seed's) empty: NaN, ignored.
                warnings.simplefilter("ignore", RuntimeWarning)
                deltas[name][start : start + rows] = np.nanmean(
                    hits_a / size - hits_b / size, axis=1
                )
    tail = (1 - level) / 2
    out = {}
    for name, (a, b, m) in checked.items():
        delta = float(np.mean(_subset_accuracy(a, m) - _subset_accuracy(b, m)))
        finite = deltas[name][np.isfinite(deltas[name])]
        lo, hi = np.quantile(finite, [tail, 1 - tail])
        out[name] = (delta, float(lo), float(hi))
    return out


def _checked(
    correct_a: np.ndarray, correct_b: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (S, N) float matrices of one comparison; ValueError naming the bad argument."""
    a = _as_matrix("correct_a", correct_a)
    b = _as_matrix("correct_b", correct_b)
    if a.shape != b.shape:
        raise ValueError(f"correct_b: shape {b.shape} differs from correct_a {a.shape}")
    m = np.ones_like(a) if mask is None else _as_matrix("mask", mask)
    if m.shape != a.shape:
        m = np.broadcast_to(m, a.shape) if m.shape == (1, a.shape[1]) else m
    if m.shape != a.shape:
        raise ValueError(f"mask: shape {m.shape} does not match correct_a {a.shape}")
    if not m.any(axis=1).all():
        raise ValueError("mask: every seed needs at least one selected sample")
    return a, b, m
