"""The one selection rule: highest mean validation accuracy, but the baseline-equivalent point
(lambda = 0) is kept unless beaten by more than one standard error of the validation noise."""

from __future__ import annotations

import math

import pytest

from synib_spec.selection import best_point, is_null_point, noise_margin


def test_noise_margin_is_the_binomial_standard_error_of_the_mean() -> None:
    # p = 0.9 on 400 validation samples, 4 seeds: sqrt(0.09 / 1600) = 0.0075
    assert noise_margin(0.9, 400, 4) == pytest.approx(0.0075)
    assert noise_margin(1.0, 400, 4) == 0.0
    with pytest.raises(ValueError, match="n_val"):
        noise_margin(0.9, 0, 1)


def test_the_highest_mean_wins_first_on_ties() -> None:
    assert best_point({"a": [0.5, 0.7], "b": [0.6, 0.6], "c": [0.61, 0.59]}) == "a"
    assert best_point({}) is None and best_point({"a": []}) is None


def test_lambda_zero_is_kept_unless_beaten_by_more_than_the_noise() -> None:
    # null mean 0.90, 2 seeds, 400 samples: margin sqrt(0.09 / 800) = 0.01061
    scores = {"lambda=0": [0.89, 0.91], "lambda=1": [0.905, 0.915]}  # +0.010: within the noise
    assert best_point(scores, null="lambda=0", n_val=400) == "lambda=0"
    scores["lambda=1"] = [0.905, 0.917]  # +0.011 > 0.01061
    assert math.isclose(noise_margin(0.9, 400, 2), 0.010607, rel_tol=1e-4)
    assert best_point(scores, null="lambda=0", n_val=400) == "lambda=1"
    assert best_point(scores, null="lambda=0") == "lambda=1"  # no n_val: plain argmax
    assert best_point({"lambda=0": [0.9]}, null="lambda=0", n_val=400) == "lambda=0"


def test_null_points_are_lambda_zero_of_methods_that_read_lambda() -> None:
    assert is_null_point("synib", {"lambda": 0.0}) and is_null_point("masking_only", {"lambda": 0})
    assert not is_null_point("synib", {"lambda": 0.1}) and not is_null_point("synib", {})
    assert not is_null_point("vanilla", {"lambda": 0.0})  # vanilla does not read lambda
