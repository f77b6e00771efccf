"""How many seeds a comparison needs: from the spread of a per-seed delta (method minus
baseline, one value per seed), the number of seeds n at which a paired two-sided test at level
alpha detects a true gain with the requested power.

Normal approximation of the paired test (the sd of the per-seed delta is treated as known):

    n = ceil(((z_{1 - alpha/2} + z_{power}) * sd / gain)^2),   sd = sample sd (ddof 1) of deltas

at least 2 (a spread needs two seeds). With few seeds the t distribution would ask for a few
more; the number is a planning figure, not a guarantee.

Example: deltas [0.02, 0.06, -0.01, 0.05] have sd 0.0316; for a gain of 0.05 at 80% power and
alpha 0.05, (1.95996 + 0.84162)^2 * 0.0316^2 / 0.05^2 = 3.14 -> 4 seeds.
    >>> seeds_needed([0.02, 0.06, -0.01, 0.05], gain=0.05)
    4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = ["DEFAULT_GAIN", "seeds_needed"]

DEFAULT_GAIN = 0.05  # +5 points of accuracy


def seeds_needed(
    deltas: Sequence[float] | np.ndarray,
    gain: float = DEFAULT_GAIN,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
) -> int | None:
    """Seeds for 80% (``power``) chance to detect ``gain`` at level ``alpha`` (two-sided,
    paired, normal approximation); None with fewer than two finite deltas.

    deltas: (S,) per-seed differences method - baseline of one metric (e.g. synergy_acc).
    """
    values = np.asarray(deltas, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if not gain > 0:
        raise ValueError(f"gain: must be > 0, got {gain}")
    if not 0 < power < 1:
        raise ValueError(f"power: must be in (0, 1), got {power}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be in (0, 1), got {alpha}")
    if values.shape[0] < 2:
        return None
    sd = float(values.std(ddof=1))
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return max(2, math.ceil((z * sd / gain) ** 2))
