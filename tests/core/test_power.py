"""seeds_needed against a hand computation of the normal-approximation sample size."""

from __future__ import annotations

import math

import pytest

from synib_core.metrics import seeds_needed


def test_seeds_needed_by_hand() -> None:
    # deltas [0.02, 0.06, -0.01, 0.05]: mean 0.03, sd = sqrt(0.003 / 3) = 0.031623;
    # z_0.975 + z_0.8 = 1.959964 + 0.841621 = 2.801585; (2.801585 * 0.031623 / 0.05)^2 = 3.1396
    assert seeds_needed([0.02, 0.06, -0.01, 0.05], gain=0.05) == 4
    # a gain half as large needs four times the seeds: 4 * 3.1396 = 12.56 -> 13
    assert seeds_needed([0.02, 0.06, -0.01, 0.05], gain=0.025) == 13


def test_power_and_alpha_move_the_answer_the_right_way() -> None:
    deltas = [0.0, 0.1, -0.05, 0.08, 0.02]
    base = seeds_needed(deltas, 0.05)
    assert base is not None
    assert seeds_needed(deltas, 0.05, power=0.95) > base  # type: ignore[operator]
    assert seeds_needed(deltas, 0.05, alpha=0.2) < base  # type: ignore[operator]
    # by hand: mean 0.03, squared deviations sum 0.0148, sd = sqrt(0.0148 / 4) = 0.060828;
    # (2.801585 * 0.060828 / 0.05)^2 = 11.62 -> 12
    assert base == math.ceil((2.801585 * 0.060828 / 0.05) ** 2) == 12


def test_too_few_seeds_or_no_spread() -> None:
    assert seeds_needed([0.03]) is None
    assert seeds_needed([0.03, float("nan")]) is None
    assert seeds_needed([0.03, 0.03, 0.03]) == 2  # no spread: the minimum for a paired test


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"gain": 0.0}, "gain"), ({"power": 1.0}, "power"), ({"alpha": 0.0}, "alpha")],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        seeds_needed([0.01, 0.02], **kwargs)
