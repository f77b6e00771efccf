"""Post-hoc temperature scaling (Guo et al., ICML 2017): one scalar T > 0 divides the logits.

T is fitted on the validation split by minimising the negative log-likelihood
NLL(T) = mean_i -log softmax(z_i / T)[y_i] (binary one-logit heads: the Bernoulli NLL of
sigmoid(z_i / T)). NLL is convex in beta = 1 / T, so it has one minimum along log T, found here by
a golden-section search on log T within [T_MIN, T_MAX]. Dividing by T > 0 never changes an
argmax, so accuracy and every synergy metric are unchanged; only the confidences move.

Example (binary, every logit 2, three of four labels 1): the optimum has sigmoid(2 / T) = 3/4,
i.e. T = 2 / log 3 = 1.8205:
    >>> round(fit_temperature(np.full((4, 1), 2.0), np.array([1, 1, 1, 0])), 4)
    1.8205
"""

from __future__ import annotations

import math

import numpy as np

from synib_core.metrics._checks import as_labels, non_empty

__all__ = ["T_MAX", "T_MIN", "fit_temperature", "scaled_nll", "temperature_probs"]

T_MIN, T_MAX = 0.05, 20.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _as_logits(logits: np.ndarray, n: int) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != n or z.shape[1] < 1:
        raise ValueError(f"logits: expected shape ({n}, K) or ({n}, 1), got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits: contains NaN or infinite values")
    return z


def _log_probs(z: np.ndarray) -> np.ndarray:
    """(N, K') log-probabilities; a (N, 1) binary logit becomes (N, 2) [log(1-p), log p]."""
    if z.shape[1] == 1:
        return np.concatenate([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)], axis=1)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def scaled_nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean NLL of labels y (N,) under logits (N, K) (or (N, 1), binary) divided by T > 0."""
    y = as_labels("y", y)
    z = _as_logits(logits, y.shape[0])
    if not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    log_p = _log_probs(z / temperature)
    if y.max(initial=0) >= log_p.shape[1]:
        raise ValueError(f"y: class ids must be below {log_p.shape[1]}")
    return float(-log_p[np.arange(y.shape[0]), y].mean())


def fit_temperature(
    logits: np.ndarray, y: np.ndarray, *, t_min: float = T_MIN, t_max: float = T_MAX
) -> float:
    """The T in [t_min, t_max] minimising ``scaled_nll(logits, y, T)`` (golden-section search on
    log T, to a relative precision of 1e-6). logits: (N, K) or (N, 1); y: (N,)."""
    y = as_labels("y", y)
    non_empty("y", y)
    z = _as_logits(logits, y.shape[0])
    if not 0 < t_min < t_max:
        raise ValueError(f"t_min, t_max: need 0 < t_min < t_max, got {t_min}, {t_max}")
    lo, hi = math.log(t_min), math.log(t_max)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = scaled_nll(z, y, math.exp(a)), scaled_nll(z, y, math.exp(b))
    while hi - lo > 1e-6:
        if fa <= fb:  # the minimum lies in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = scaled_nll(z, y, math.exp(a))
        else:  # in [a, hi]
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = scaled_nll(z, y, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def temperature_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """(N, K) float32 probabilities of logits (N, K) (or (N, 1): sigmoid, two columns) / T."""
    if not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits: expected shape (N, K) or (N, 1), got {z.shape}")
    return np.exp(_log_probs(z / temperature)).astype(np.float32)
