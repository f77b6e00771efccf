"""Sweep + select by validation (the service's rule) and the default sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synib_core.config import TrainConfig
from synib_core.data import make_dataset
from synib_core.reporting import format_table
from synib_core.training.sweep import (
    DEFAULT_SWEEP,
    SweepRun,
    best_points,
    method_points,
    run_sweep,
    sweep_grid,
    sweep_report,
)

torch.set_num_threads(1)


def _run(method: str, seed: int, lam: float | None, val: float) -> SweepRun:
    point = {} if lam is None else {"lambda": lam}
    return SweepRun(method, seed, point, {"val_acc": val, "test_acc": 0.0}, np.zeros(2, int))


def test_best_point_is_the_highest_mean_val_acc_first_on_ties() -> None:
    runs = [
        _run("synib", 0, 0.1, 0.90), _run("synib", 1, 0.1, 0.70),  # mean 0.80
        _run("synib", 0, 1.0, 0.85), _run("synib", 1, 1.0, 0.85),  # mean 0.85: best
        _run("synib", 0, 10.0, 0.99), _run("synib", 1, 10.0, 0.60),  # mean 0.795, best seed 0
        _run("masking_only", 0, 0.1, 0.5), _run("masking_only", 0, 1.0, 0.5),  # tie: first
        _run("vanilla", 0, None, 0.1),
    ]  # fmt: skip
    assert best_points(runs) == {
        "synib": {"lambda": 1.0},
        "masking_only": {"lambda": 0.1},
        "vanilla": {},
    }


def test_grid_and_method_points() -> None:
    grid = sweep_grid({"lambda": (0.1, 1.0), "mask_prob": (0.3, 0.5)})
    assert len(grid) == 4 and grid[1] == {"lambda": 0.1, "mask_prob": 0.5}
    assert method_points("vanilla", grid) == [{}]  # reads neither knob: one run per seed
    assert method_points("synib", grid) == grid
    assert sweep_grid(None) == [{}]
    with pytest.raises(ValueError, match="lamda"):
        sweep_grid({"lamda": (1.0,)})
    assert set(DEFAULT_SWEEP) == {"lambda"}


def test_run_sweep_end_to_end_selects_by_validation_only() -> None:
    data = make_dataset("xor_pid", 1, n_train=200, n_val=60, n_test=300)
    base = TrainConfig(hidden=8, fusion_hidden=8, epochs=2)
    result = run_sweep(
        data, methods=("vanilla", "synib"), seeds=(0, 1), base=base, sweep={"lambda": ("0.1", 3)}
    )
    assert len(result.runs) == 2 * (1 + 2)
    assert {r.point["lambda"] for r in result.runs if r.method == "synib"} == {0.1, 3.0}
    report = sweep_report(result, n_boot=50)
    synib = report["methods"]["synib"]
    scores = {
        lam: np.mean([r.metrics["val_acc"] for r in result.runs if r.point.get("lambda") == lam])
        for lam in (0.1, 3.0)
    }
    chosen = max(scores, key=lambda k: scores[k])  # ties: 0.1 comes first and max keeps it
    assert synib["best_config"] == {"lambda": chosen}
    picked = [r for r in result.runs if r.method == "synib" and r.point["lambda"] == chosen]
    assert synib["metrics"]["test_acc"]["values"] == [r.metrics["test_acc"] for r in picked]
    assert len(synib["sweep_curve"]) == 2 and "synergy_acc" in synib["delta_vs_baseline"]
    table = format_table(report)
    assert f"synib: selected lambda={chosen}" in table and "synib vs vanilla:" in table


def test_lambda_zero_reuses_vanilla_and_equals_a_trained_one() -> None:
    data = make_dataset("xor_pid", 2, n_train=120, n_val=40, n_test=100)
    base = TrainConfig(hidden=8, fusion_hidden=8, epochs=2)
    result = run_sweep(
        data, methods=("synib", "vanilla"), seeds=(0,), base=base, sweep={"lambda": (0.0, 1.0)}
    )
    by = {(r.method, r.point.get("lambda")): r for r in result.runs}
    assert result.runs[0].method == "vanilla"  # trained first
    assert by[("synib", 0.0)].metrics == by[("vanilla", None)].metrics
    alone = run_sweep(data, methods=("synib",), seeds=(0,), base=base, sweep={"lambda": (0.0,)})
    trained = alone.runs[0]  # no vanilla to reuse: trained, and identical
    assert trained.metrics == by[("vanilla", None)].metrics
    np.testing.assert_array_equal(trained.test_pred, by[("synib", 0.0)].test_pred)
