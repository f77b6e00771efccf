"""Partial information decomposition (PID): how much two modalities say about a target (the
label, or a model's predictions), split into redundancy R, the unique information U_1, U_2 of
each modality and synergy S, in bits, with R + U_1 + U_2 + S = I(Y; X_1, X_2).

Definitions of Bertschinger et al. (2014), estimated as the convex program of Liang et al. (2023,
"Quantifying & modeling multimodal interactions", the CVX / BATCH estimator on discrete data):

    q* = argmin_{q in D_p} I_q(Y; X_1, X_2),  D_p = {q: q(x_i, y) = p(x_i, y) for i = 1, 2}
    R = I(Y; X_1) + I(Y; X_2) - I_q*(Y; X_1, X_2)     U_1 = I_q* - I(Y; X_2)
    S = I_p(Y; X_1, X_2) - I_q*                       U_2 = I_q* - I(Y; X_1)

With q(y) fixed, minimising I_q is minimising -H_q(Y | X_1, X_2) = sum q log(q(x_1, x_2, y) /
q(x_1, x_2)), a sum of relative entropies of q and its (affine) marginal, so the program is
convex; cvxpy solves it with Clarabel (exponential cones). p is the plug-in estimate (counts / N)
after ``discretise.py`` turns each modality into states. More than two modalities: every pair.

Ground truth (tests/core/test_pid.py): Y = X_1 XOR X_2 gives S = 1 bit and R = U = 0; copies
X_1 = X_2 = Y give R = 1 bit only.

Example:
    >>> bits = np.array([0, 0, 1, 1] * 50); other = np.array([0, 1, 0, 1] * 50)
    >>> terms = pid_of_states(bits, other, bits ^ other)       # XOR
    >>> round(terms.synergy, 3), round(terms.redundancy, 3)
    (1.0, 0.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from synib_core.metrics._checks import as_labels, non_empty
from synib_core.metrics.discretise import discretise_modalities

__all__ = [
    "PID",
    "PIDTerms",
    "PIDUnavailable",
    "dataset_pid",
    "joint_distribution",
    "pairwise_pid",
    "pid_of_joint",
    "pid_of_states",
    "prediction_pid",
]

INSTALL_HINT = "PID estimates need cvxpy: pip install 'synib[pid]'"


class PIDUnavailable(RuntimeError):
    """The convex solver (cvxpy, the ``pid`` extra) is not installed."""


@dataclass(frozen=True)
class PIDTerms:
    """The four PID terms and the total I(Y; X_1, X_2), in bits."""

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    total: float


@dataclass(frozen=True)
class PID:
    """PID of one pair of modalities about ``target`` ("label" or "prediction"), in bits.

    unique: modality -> U of that modality; states: modality -> discrete states used; n: samples.
    """

    modalities: tuple[str, str]
    target: str
    redundancy: float
    unique: dict[str, float]
    synergy: float
    total: float
    states: dict[str, int]
    n: int

    def to_json(self) -> dict[str, Any]:
        return {
            "modalities": list(self.modalities),
            "target": self.target,
            "redundancy": self.redundancy,
            "unique": dict(self.unique),
            "synergy": self.synergy,
            "total": self.total,
            "states": dict(self.states),
            "n": self.n,
        }


def joint_distribution(s1: np.ndarray, s2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """p(x_1, x_2, y): (A, B, K) float64 summing to 1, from (N,) integer states s1, s2 and
    targets y (each relabelled to its distinct values, so no state is empty)."""
    y = as_labels("y", y)
    non_empty("y", y)
    ids = [np.unique(as_labels(n, v, y.shape[0]), return_inverse=True)[1].reshape(-1)
           for n, v in (("s1", s1), ("s2", s2), ("y", y))]  # fmt: skip
    shape = tuple(int(i.max()) + 1 for i in ids)
    counts = np.zeros(shape, dtype=np.float64)
    np.add.at(counts, (ids[0], ids[1], ids[2]), 1.0)
    return counts / y.shape[0]


def _entropy(p: np.ndarray) -> float:
    """H(p) in bits of a probability array of any shape (0 log 0 = 0)."""
    q = p[p > 0]
    return float(-(q * np.log2(q)).sum())


def _mutual_information(p_xy: np.ndarray) -> float:
    """I(X; Y) in bits of a joint p_xy: (X, Y)."""
    return _entropy(p_xy.sum(1)) + _entropy(p_xy.sum(0)) - _entropy(p_xy)


def _min_joint_information(p: np.ndarray) -> float:
    """min_{q in D_p} I_q(Y; X_1, X_2) in bits (module docstring); p: (A, B, K)."""
    try:
        import cvxpy as cp
    except ImportError:
        raise PIDUnavailable(INSTALL_HINT) from None
    a, b, k = p.shape
    cell = np.arange(a * b)  # cell i is (x_1, x_2) = (i // b, i % b)
    to_x1 = (cell[None, :] // b == np.arange(a)[:, None]).astype(np.float64)  # (A, A*B)
    to_x2 = (cell[None, :] % b == np.arange(b)[:, None]).astype(np.float64)  # (B, A*B)
    q = cp.Variable((a * b, k), nonneg=True)  # q(x_1, x_2, y), cells as rows
    q_cells = cp.sum(q, axis=1, keepdims=True) @ np.ones((1, k))  # q(x_1, x_2) per column
    neg_conditional_entropy = cp.sum(cp.rel_entr(q, q_cells))  # -H_q(Y | X_1, X_2), nats
    constraints = [to_x1 @ q == p.sum(axis=1), to_x2 @ q == p.sum(axis=0)]
    problem = cp.Problem(cp.Minimize(neg_conditional_entropy), constraints)
    problem.solve(solver=cp.CLARABEL)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or problem.value is None:
        raise RuntimeError(f"PID solver ended with status {problem.status!r} on a {p.shape} table")
    return _entropy(p.sum(axis=(0, 1))) + float(problem.value) / math.log(2)


def pid_of_joint(p: np.ndarray) -> PIDTerms:
    """The PID terms of a joint distribution p: (A, B, K) of (x_1, x_2, y), in bits.

    I_q* is clipped to its range [max(I(Y;X_1), I(Y;X_2)), min(I_p(Y;X_1,X_2), I(Y;X_1) +
    I(Y;X_2))] (the upper end: q with X_1, X_2 independent given Y is in D_p) against the
    solver's tolerance (about 1e-7 bits), so every term is >= 0.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(f"p: expected a non-empty (A, B, K) table, got shape {p.shape}")
    if (p < 0).any() or not math.isclose(float(p.sum()), 1.0, abs_tol=1e-9):
        raise ValueError("p: expected probabilities >= 0 summing to 1")
    i1 = _mutual_information(p.sum(axis=1))
    i2 = _mutual_information(p.sum(axis=0))
    total = _mutual_information(p.reshape(-1, p.shape[2]))
    iq = total if p.shape[2] == 1 else _min_joint_information(p)
    iq = min(max(iq, i1, i2), total, i1 + i2)
    return PIDTerms(
        redundancy=i1 + i2 - iq, unique_1=iq - i2, unique_2=iq - i1, synergy=total - iq,
        total=total,
    )  # fmt: skip


def pid_of_states(s1: np.ndarray, s2: np.ndarray, y: np.ndarray) -> PIDTerms:
    """PID terms of discrete states s1, s2: (N,) int about targets y: (N,) int."""
    return pid_of_joint(joint_distribution(s1, s2, y))


def pairwise_pid(
    states: Mapping[str, np.ndarray], y: np.ndarray, *, target: str = "label"
) -> list[PID]:
    """One PID per pair of modalities (in the mapping's order). states: modality -> (N,) int
    states (``discretise.discretise_modalities``); y: (N,) int targets."""
    if len(states) < 2:
        raise ValueError(f"states: a PID needs at least two modalities, got {list(states)}")
    y = as_labels("y", y)
    out = []
    for m1, m2 in itertools.combinations(states, 2):
        terms = pid_of_states(states[m1], states[m2], y)
        out.append(PID(
            modalities=(m1, m2), target=target, redundancy=terms.redundancy,
            unique={m1: terms.unique_1, m2: terms.unique_2}, synergy=terms.synergy,
            total=terms.total, states={m: int(np.max(states[m])) + 1 for m in (m1, m2)},
            n=int(y.shape[0]),
        ))  # fmt: skip
    return out


def dataset_pid(
    x: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    clusters: int | None = None,
    seed: int = 0,
) -> list[PID]:
    """PID of the data about its labels for every pair of modalities.

    x: modality -> (N, ...) inputs; y: (N,) class ids; clusters: k-means states per modality
    (None: ``discretise.default_clusters``); seed: the k-means seed.
    """
    y = as_labels("y", y)
    non_empty("y", y)
    num_classes = int(np.unique(y).shape[0])
    states = discretise_modalities(x, num_classes, clusters=clusters, seed=seed)
    return pairwise_pid(states, y)


def prediction_pid(states: Mapping[str, np.ndarray], pred: np.ndarray) -> list[PID]:
    """PID of a trained model's predictions: how much of what it predicts comes from each
    modality alone, from both redundantly, and from their synergy.

    states: modality -> (N_test,) states of the test inputs (discretise them once with
    ``discretise_modalities`` and reuse them for every method and seed); pred: (N_test,) the
    model's predicted labels on the test split (they replace the true labels as the target).
    """
    return pairwise_pid(states, pred, target="prediction")
