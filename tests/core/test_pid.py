"""The PID estimator (synib_core.metrics.pid) against ground truth worked out by hand and against
an independent brute-force minimisation."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from synib_core.data import GENERATORS
from synib_core.metrics import PIDUnavailable, dataset_pid, discretise_modalities, prediction_pid
from synib_core.metrics.pid import joint_distribution, pid_of_joint, pid_of_states

BITS = np.array([0, 0, 1, 1] * 100)
OTHER = np.array([0, 1, 0, 1] * 100)


def terms_of(p: np.ndarray) -> tuple[float, float, float, float]:
    t = pid_of_joint(p)
    return t.redundancy, t.unique_1, t.unique_2, t.synergy


def test_xor_is_one_bit_of_synergy() -> None:
    t = pid_of_states(BITS, OTHER, BITS ^ OTHER)
    assert t.synergy == pytest.approx(1.0, abs=1e-5)
    assert (t.redundancy, t.unique_1, t.unique_2) == pytest.approx((0, 0, 0), abs=1e-5)
    assert t.total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_copies_are_only_redundancy(num_classes: int) -> None:
    y = np.arange(300) % num_classes
    t = pid_of_states(y, y, y)
    assert t.redundancy == pytest.approx(np.log2(num_classes), abs=1e-5)
    assert (t.unique_1, t.unique_2, t.synergy) == pytest.approx((0, 0, 0), abs=1e-5)


def test_one_informative_modality_is_unique_information() -> None:
    t = pid_of_states(BITS, OTHER, BITS)  # X_1 = Y, X_2 independent of Y
    assert t.unique_1 == pytest.approx(1.0, abs=1e-5)
    assert (t.redundancy, t.unique_2, t.synergy) == pytest.approx((0, 0, 0), abs=1e-5)


def brute_force_min_information(p: np.ndarray, grid: int = 801) -> float:
    """min I_q(Y; X_1, X_2) over D_p for binary X_1, X_2, Y by grid search.

    For each y the 2x2 table q(., ., y) has fixed row sums r and column sums c, so one entry
    t_y = q(0, 0, y) fixes it: q = [[t, r0 - t], [c0 - t, r1 - c0 + t]], t in
    [max(0, c0 - r1), min(r0, c0)]. A grid over (t_0, t_1), then a finer one around the best.
    """

    def info(t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        tables = []
        for y, t in ((0, t0), (1, t1)):
            r, c = p[:, :, y].sum(1), p[:, :, y].sum(0)
            tables.append(np.stack([t, r[0] - t, c[0] - t, r[1] - c[0] + t], -1))  # cells
        q = np.stack(np.broadcast_arrays(*tables), -1)  # (G, G, 4 cells, 2 labels)
        q_cell = q.sum(-1, keepdims=True)
        py = p.sum((0, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(q > 0, q * np.log2(q / (q_cell * py)), 0.0)
        return terms.sum((-1, -2))

    bounds = []
    for y in (0, 1):
        r, c = p[:, :, y].sum(1), p[:, :, y].sum(0)
        bounds.append((max(0.0, c[0] - r[1]), min(r[0], c[0])))
    best = np.inf
    for _ in range(3):
        t0 = np.linspace(*bounds[0], grid)[:, None]
        t1 = np.linspace(*bounds[1], grid)[None, :]
        values = info(t0, t1)
        i, j = np.unravel_index(np.argmin(values), values.shape)
        best = min(best, float(values[i, j]))
        w0, w1 = (bounds[0][1] - bounds[0][0]) / 20, (bounds[1][1] - bounds[1][0]) / 20
        x0, x1 = float(t0[i, 0]), float(t1[0, j])
        bounds = [
            (max(bounds[0][0], x0 - w0), min(bounds[0][1], x0 + w0)),
            (max(bounds[1][0], x1 - w1), min(bounds[1][1], x1 + w1)),
        ]
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_solver_matches_a_brute_force_minimisation(seed: int) -> None:
    p = np.random.default_rng(seed).dirichlet(np.ones(8)).reshape(2, 2, 2)
    t = pid_of_joint(p)
    i1 = t.redundancy + t.unique_1  # I(Y; X_1) = R + U_1
    assert i1 + t.unique_2 == pytest.approx(brute_force_min_information(p), abs=1e-4)
    assert t.redundancy + t.unique_1 + t.unique_2 + t.synergy == pytest.approx(t.total)
    assert min(t.redundancy, t.unique_1, t.unique_2, t.synergy) >= 0


def test_xor_from_continuous_inputs_through_kmeans() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    bits = rng.integers(0, 2, size=(2, n))
    x = {m: bits[k][:, None] * 3.0 + 0.2 * rng.standard_normal((n, 3)) for k, m in enumerate("ab")}
    (pid,) = dataset_pid(x, bits[0] ^ bits[1], clusters=2)
    assert pid.modalities == ("a", "b") and pid.states == {"a": 2, "b": 2} and pid.n == n
    assert pid.synergy == pytest.approx(1.0, abs=0.01)
    assert pid.redundancy + sum(pid.unique.values()) == pytest.approx(0.0, abs=0.01)


def xor_pid_data(p: tuple[float, float, float, float]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    data = GENERATORS["xor_pid"](seed=0, p=p, n_train=8000, n_val=1000, n_test=1000, signal=10.0)
    return data.x, data.y


def test_xor_pid_default_mixture_is_recovered_within_005_bits() -> None:
    """xor_pid with p = (pU_a, pU_b, pR, pS) = (0.45, 0, 0.45, 0.10), signal 10 (the sign bits
    stand ten noise sds apart: the states are readable), 10,000 samples, default clusters.

    Ground truth by hand. Each sample has one source T; y is a fair bit. With a strong signal
    modality a reads T (its unique, redundant and synergy blocks, or none of them) and a bit:
    y when T is U_a or R, the random bit b_a when T is S. Modality b reads T (U_b, R, S or none)
    and y when T is U_b or R, b_a XOR y when T is S. So
      I(Y; X_a) = pU_a + pR = 0.90, I(Y; X_b) = pU_b + pR = 0.45, I(Y; X_a, X_b) = 1 bit
    (every source reveals y, S through the XOR). I_q >= max(I(Y;X_a), I(Y;X_b)) = 0.90, and the
    q that keeps T shared and makes the two synergy bits independent given y attains it. So
      R = 0.90 + 0.45 - 0.90 = 0.45, U_a = 0.90 - 0.45 = 0.45, U_b = 0.90 - 0.90 = 0,
      S = 1 - 0.90 = 0.10.
    """
    (pid,) = dataset_pid(*xor_pid_data((0.45, 0.0, 0.45, 0.10)))
    assert pid.states == {"a": 15, "b": 15}  # floor(sqrt(10000 / (20 * 2)))
    assert pid.redundancy == pytest.approx(0.45, abs=0.05)
    assert pid.unique["a"] == pytest.approx(0.45, abs=0.05)
    assert pid.unique["b"] == pytest.approx(0.0, abs=0.05)
    assert pid.synergy == pytest.approx(0.10, abs=0.05)


def test_xor_pid_with_both_unique_sources() -> None:
    """p = (0.3, 0.2, 0.3, 0.2): I(Y;X_a) = 0.6, I(Y;X_b) = 0.5, I(Y; X_a, X_b) = 1.

    Here the minimising q pairs the samples where b reveals y (its U_b and R, mass 0.5) with
    samples where a reveals y, consistently in y (both marginals allow it), so the revealing
    events nest and I_q* = max(0.6, 0.5) = 0.6. Hence R = 0.6 + 0.5 - 0.6 = 0.5 = pR +
    min(pU_a, pU_b), U_a = 0.1, U_b = 0, S = 1 - 0.6 = 0.4 = pS + min(pU_a, pU_b): this PID
    counts the overlap of two unique sources as redundancy and its complement as synergy.
    """
    (pid,) = dataset_pid(*xor_pid_data((0.3, 0.2, 0.3, 0.2)))
    assert pid.redundancy == pytest.approx(0.5, abs=0.05)
    assert pid.unique["a"] == pytest.approx(0.1, abs=0.05)
    assert pid.unique["b"] == pytest.approx(0.0, abs=0.05)
    assert pid.synergy == pytest.approx(0.4, abs=0.05)


def test_prediction_pid_tells_a_lazy_model_from_a_synergistic_one() -> None:
    states = discretise_modalities({"a": BITS[:, None], "b": OTHER[:, None]}, 2)
    (lazy,) = prediction_pid(states, BITS)  # predicts from a alone
    (xor,) = prediction_pid(states, BITS ^ OTHER)  # uses both
    assert lazy.target == "prediction"
    assert lazy.unique["a"] == pytest.approx(1.0, abs=1e-5) and lazy.synergy < 1e-5
    assert xor.synergy == pytest.approx(1.0, abs=1e-5) and xor.unique["a"] < 1e-5


def test_more_than_two_modalities_are_decomposed_pairwise() -> None:
    x = {"a": BITS[:, None], "b": OTHER[:, None], "c": BITS[:, None]}
    pids = dataset_pid(x, BITS ^ OTHER)
    assert [p.modalities for p in pids] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pids[0].synergy == pytest.approx(1.0, abs=1e-5)  # a, b: the XOR
    assert pids[1].total == pytest.approx(0.0, abs=1e-9)  # a, c: copies of one input bit
    assert pids[0].to_json()["unique"] == pids[0].unique


def test_joint_distribution_by_hand() -> None:
    p = joint_distribution(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]), np.array([1, 0, 1, 1]))
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 1] = expected[0, 0, 0] = expected[1, 0, 1] = expected[1, 1, 1] = 0.25
    assert np.array_equal(p, expected)
    assert pid_of_joint(np.ones((2, 2, 1)) / 4).total == 0.0  # one class: nothing to know


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ({"a": np.zeros((4, 2)), "b": np.zeros((3, 2))}, np.zeros(4, int), "same number of rows"),
        ({"a": np.zeros((4, 2))}, np.zeros(4, int), "at least two modalities"),
        ({"a": np.full((4, 2), np.nan), "b": np.zeros((4, 2))}, np.zeros(4, int), "x['a']"),
        ({"a": np.zeros((4, 2)), "b": np.zeros((4, 2))}, np.zeros(4), "integer class ids"),
    ],
)
def test_bad_input_names_the_argument(
    x: dict[str, np.ndarray], y: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        dataset_pid(x, y)


def test_missing_solver_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy: ModuleNotFoundError
    with pytest.raises(PIDUnavailable, match=r"pip install 'synib\[pid\]'"):
        pid_of_states(BITS, OTHER, BITS ^ OTHER)
