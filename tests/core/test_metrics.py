"""synib_core.metrics against scikit-learn and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from synib_core.metrics import (
    accuracy,
    counterfactual_confidence,
    expected_calibration_error,
    group_accuracies,
    macro_f1,
    paired_bootstrap_ci,
    paired_bootstrap_cis,
    strict_synergy_mask,
    summarize,
    unimodal_groups,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_and_macro_f1_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=200)
    pred = np.where(
        rng.random(200) < 0.6, y, rng.integers(0, 4, size=200)
    )  # class 4 never predicted
    assert accuracy(pred, y) == pytest.approx(accuracy_score(y, pred))
    expected = f1_score(y, pred, average="macro", zero_division=0)
    assert macro_f1(pred, y, num_classes=6) == pytest.approx(expected)


def test_macro_f1_by_hand() -> None:
    # class 0: tp 1, 2 true, 1 pred -> 2/3; class 1: tp 1, 1 true, 2 pred -> 2/3
    assert macro_f1(np.array([0, 1, 1]), np.array([0, 0, 1]), 2) == pytest.approx(2 / 3)


def test_metric_shape_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="pred"):
        accuracy(np.zeros(3, dtype=int), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="y"):
        accuracy(np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="probs"):
        expected_calibration_error(np.ones((3, 1)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="y"):
        macro_f1(np.zeros(2, dtype=int), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="groups"):
        group_accuracies(np.zeros(2, dtype=int), np.zeros(2, dtype=int), np.array(["a"]))


def test_ece_hand_example() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1])
    # 2 bins: (0, .5] empty, (.5, 1] all four: acc 3/4, conf (0.9+0.6+0.8+0.55)/4 = 0.7125
    assert expected_calibration_error(probs, y, n_bins=2) == pytest.approx(abs(0.75 - 0.7125))
    # 15 bins: 0.9 -> bin 13 (right), 0.6 -> bin 8 (wrong), 0.8 -> bin 11 (right), 0.55 -> bin 8
    # (right); bin 8: acc 1/2, conf 0.575
    expected = (0.1 + 0.2 + 2 * abs(0.5 - 0.575)) / 4
    assert expected_calibration_error(probs, y) == pytest.approx(expected)


def test_ece_of_perfect_calibration_is_zero() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0


def test_counterfactual_confidence_is_kl_to_uniform() -> None:
    assert counterfactual_confidence(np.full((3, 4), 0.25)) == pytest.approx(0.0)
    assert counterfactual_confidence(np.array([[1.0, 0.0, 0.0]])) == pytest.approx(math.log(3))
    q = np.array([0.7, 0.2, 0.1])
    by_hand = sum(p * math.log(3 * p) for p in q)
    rows = np.stack([q, np.array([1 / 3] * 3)])
    assert counterfactual_confidence(rows) == pytest.approx(by_hand / 2)


def test_unimodal_groups_by_hand() -> None:
    y = np.array([0, 1, 0, 1, 1])
    refs = {"a": np.array([0, 1, 1, 0, 1]), "b": np.array([0, 0, 1, 1, 0])}
    groups = unimodal_groups(refs, y)
    assert groups["redundant"].tolist() == [True, False, False, False, False]
    assert groups["unique_a"].tolist() == [False, True, False, False, True]
    assert groups["unique_b"].tolist() == [False, False, False, True, False]
    assert groups["synergy"].tolist() == [False, False, True, False, False]


def test_strict_synergy_needs_every_seed_wrong() -> None:
    y = np.array([0, 0, 0])
    seed0 = {"a": np.array([1, 1, 0]), "b": np.array([1, 1, 1])}
    seed1 = {"a": np.array([1, 0, 1]), "b": np.array([1, 1, 1])}
    assert strict_synergy_mask([seed0, seed1], y).tolist() == [True, False, False]
    assert strict_synergy_mask([seed0], y).tolist() == [True, True, False]


def test_group_accuracies_by_hand() -> None:
    acc = group_accuracies(
        np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array(["s", "s", "r", "r"])
    )
    assert acc == {"r": 0.5, "s": 1.0}


def test_summarize_uses_the_vocabulary() -> None:
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])  # pred 0, 1, 1, 0
    refs = {"a": np.array([0, 0, 1, 0]), "b": np.array([0, 0, 1, 1])}
    out = summarize(
        probs,
        y,
        ref_preds=refs,
        groups=np.array(["synergy", "synergy", "unique_a", "unique_a"]),
        cf_probs={"a": np.full((4, 2), 0.5), "b": np.tile([1.0, 0.0], (4, 1))},
    )
    assert out["test_acc"] == 0.5
    # synergy subset = samples 1, 2 (both refs wrong): fused right on 1 only
    assert out["synergy_n"] == 2 and out["synergy_acc"] == 0.5
    assert out["redundant_acc"] == 1.0 and out["unique_b_acc"] == 0.0
    assert "unique_a_acc" not in out  # empty subset: left out, never NaN
    assert out["group_synergy_acc"] == 1.0 and out["group_unique_a_acc"] == 0.0
    assert out["cf_conf_a"] == pytest.approx(0.0) and out["cf_conf_b"] == pytest.approx(math.log(2))
    assert out["test_macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert set(summarize(probs, y)) == {"test_acc", "test_macro_f1", "test_ece"}


def test_paired_bootstrap_deterministic_and_contains_delta() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 500)) < 0.8
    b = rng.random((3, 500)) < 0.7
    delta, lo, hi = paired_bootstrap_ci(a, b, n_boot=500, seed=7)
    assert delta == pytest.approx(a.mean() - b.mean())
    assert lo < delta < hi and lo > 0  # a is clearly better
    assert (delta, lo, hi) == paired_bootstrap_ci(a, b, n_boot=500, seed=7)
    assert (lo, hi) != paired_bootstrap_ci(a, b, n_boot=500, seed=8)[1:]
    _, lo90, hi90 = paired_bootstrap_ci(a, b, n_boot=500, seed=7, level=0.5)
    assert lo < lo90 < hi90 < hi


def test_paired_bootstrap_identical_methods_and_mask() -> None:
    a = np.array([[True, False, True, True]])
    assert paired_bootstrap_ci(a, a, n_boot=50) == (0.0, 0.0, 0.0)
    b = np.array([True, True, False, False])  # (N,) is one seed
    mask = np.array([[True, True, False, False]])
    delta, lo, hi = paired_bootstrap_ci(a, b, mask=mask, n_boot=200)
    assert delta == pytest.approx(0.5 - 1.0)  # inside the mask: a 1/2, b 2/2
    assert lo <= delta <= hi <= 0.0
    with pytest.raises(ValueError, match="correct_b"):
        paired_bootstrap_ci(a, np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        paired_bootstrap_ci(a, a, mask=np.zeros((1, 4), dtype=bool))


def test_paired_bootstrap_large_n_is_chunked() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((2, 30000)) < 0.6
    delta, lo, hi = paired_bootstrap_ci(a, a.copy() & (rng.random((2, 30000)) < 0.9), n_boot=300)
    assert 0 < lo < delta < hi


def _naive_bootstrap(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float]:
    """The 95% interval by an explicit loop over resamples (one chunk: N * n_boot < 4M)."""
    n = a.shape[1]
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    deltas = []
    for idx in draws:
        per_seed = [
            a[s, idx][mask[s, idx]].mean() - b[s, idx][mask[s, idx]].mean()
            for s in range(a.shape[0])
            if mask[s, idx].any()
        ]
        deltas.append(np.mean(per_seed))
    lo, hi = np.quantile(deltas, [0.025, 0.975])
    return float(lo), float(hi)


def test_paired_bootstrap_in_several_chunks_matches_one_draw_of_every_resample() -> None:
    # 400 resamples of N = 3,000 are drawn in chunks of 2**20 // N = 349 rows: two chunks.
    # The interval must be that of drawing all 400 at once (the explicit loop below).
    rng = np.random.default_rng(11)
    a = rng.random((2, 3000)) < 0.8
    b = rng.random((2, 3000)) < 0.75
    subset = rng.random((2, 3000)) < 0.3
    delta, lo, hi = paired_bootstrap_ci(a, b, mask=subset, n_boot=400, seed=2)
    assert (lo, hi) == pytest.approx(_naive_bootstrap(a, b, subset, 400, 2))
    assert delta == pytest.approx(
        np.mean([a[s][subset[s]].mean() - b[s][subset[s]].mean() for s in range(2)])
    )


def test_paired_bootstrap_of_several_metrics_at_once_matches_an_explicit_loop() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((2, 300)) < 0.8
    b = rng.random((2, 300)) < 0.7
    subset = rng.random((2, 300)) < 0.2
    comparisons = {"all": (a, b, None), "subset": (a, b, subset), "swapped": (b, a, None)}
    out = paired_bootstrap_cis(comparisons, n_boot=400, seed=5)
    assert set(out) == set(comparisons)
    for name, (x, y, m) in comparisons.items():
        full = np.ones_like(x) if m is None else m
        lo, hi = _naive_bootstrap(x, y, full, 400, 5)
        delta = np.mean([x[s][full[s]].mean() - y[s][full[s]].mean() for s in range(2)])
        assert out[name] == pytest.approx((delta, lo, hi))
        # The same as its own call: the comparisons share the resamples, nothing else.
        assert out[name] == paired_bootstrap_ci(x, y, mask=m, n_boot=400, seed=5)
    assert out["swapped"][0] == pytest.approx(-out["all"][0])
    with pytest.raises(ValueError, match="same number of samples"):
        paired_bootstrap_cis({"x": (a, b, None), "y": (a[:, :10], b[:, :10], None)})
    with pytest.raises(ValueError, match="mask"):
        paired_bootstrap_cis({"x": (a, b, np.zeros_like(a))})
