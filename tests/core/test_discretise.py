"""Discretisation for the PID: the cluster-count rule and k-means states."""

from __future__ import annotations

import numpy as np
import pytest

from synib_core.metrics import default_clusters, discretise, discretise_modalities


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [(10_000, 2, 15), (4_000, 2, 10), (10_000, 10, 7), (100, 2, 2), (10**7, 2, 20)],
)
def test_default_clusters_rule(n: int, k: int, expected: int) -> None:
    # floor(sqrt(n / (20 k))) clipped to [2, 20]: 10000/40 = 250 -> 15; 4000/40 -> 10;
    # 10000/200 = 50 -> 7; 100/40 -> 1 -> 2; 10^7/40 -> 500 -> 20
    assert default_clusters(n, k) == expected


def test_kmeans_recovers_separated_groups_in_order_of_appearance() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    group = rng.integers(0, 3, size=300)
    x = centres[group] + rng.standard_normal((300, 2))
    states = discretise(x, 3, seed=0)
    first = {g: states[np.argmax(group == g)] for g in range(3)}
    assert np.array_equal(states, np.array([first[g] for g in group]))
    assert states[0] == 0 and set(states.tolist()) == {0, 1, 2}
    assert np.array_equal(discretise(x, 3, seed=0), states)  # the seed fixes the result


def test_few_distinct_rows_are_used_as_they_are() -> None:
    codes = np.array([[7, 1], [3, 3], [7, 1], [0, 0]])
    assert discretise(codes, 5).tolist() == [0, 1, 0, 2]


def test_modalities_share_one_rule_and_rows_must_agree() -> None:
    x = {"a": np.arange(4000.0)[:, None], "b": np.arange(4000.0).reshape(-1, 1) % 7}
    states = discretise_modalities(x, 2)
    assert int(states["a"].max()) + 1 == 10  # default rule for 4000 samples, 2 classes
    assert int(states["b"].max()) + 1 == 7  # 7 distinct values <= 10: kept as they are
    with pytest.raises(ValueError, match="same number of rows"):
        discretise_modalities({"a": np.zeros((3, 1)), "b": np.zeros((4, 1))}, 2)
    with pytest.raises(ValueError, match="clusters"):
        discretise(np.zeros((4, 1)), 1)
