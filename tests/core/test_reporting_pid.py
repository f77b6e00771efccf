"""The report's "seeds needed" and PID lines: numbers by hand, and the real PID of predictions."""

from __future__ import annotations

import numpy as np
import pytest

from synib_core.metrics import discretise_modalities, pid_verdict, prediction_pid
from synib_core.metrics.pid import pairwise_pid
from synib_core.reporting import compare_report, format_table, run_record

Y = np.array([0, 1, 0, 1, 0, 1, 0, 1])


def pid_json(synergy: float, redundancy: float = 0.2) -> dict:
    return {"modalities": ["a", "b"], "target": "prediction", "redundancy": redundancy,
            "unique": {"a": 0.1, "b": 0.0}, "synergy": synergy, "total": 0.3 + synergy,
            "states": {"a": 2, "b": 2}, "n": 8}  # fmt: skip


def records() -> list:
    out = []
    deltas = [0.02, 0.06, -0.01, 0.05]  # sd 0.031623: 4 seeds for +5 points (test_power.py)
    for seed, delta in enumerate(deltas):
        for method, syn, pid_s in (("vanilla", 0.5, 0.1), ("synib", 0.5 + delta, 0.3 + seed / 10)):
            metrics = {"test_acc": 0.5, "synergy_acc": syn}
            out.append(run_record(method, seed, metrics, Y, Y, prediction_pid=[pid_json(pid_s)]))
    return out


def test_seeds_needed_and_prediction_pid_in_the_report() -> None:
    data_pid = {"pairs": [pid_json(0.4) | {"target": "label"}], "verdict": "much synergy"}
    report = compare_report(records(), n_boot=50, data_pid=data_pid)
    synib = report["methods"]["synib"]
    assert synib["seeds_needed"]["synergy_acc"] == 4
    assert synib["seeds_needed"]["test_acc"] == 2  # no spread: the minimum
    assert "seeds_needed" not in report["methods"]["vanilla"]
    pid = synib["prediction_pid"]["a+b"]
    assert pid["synergy"]["mean"] == pytest.approx(np.mean([0.3, 0.4, 0.5, 0.6]))
    assert pid["synergy"]["values"] == pytest.approx([0.3, 0.4, 0.5, 0.6])
    assert pid["unique"]["a"]["mean"] == pytest.approx(0.1)
    lines = format_table(report).splitlines()
    assert (
        "PID of the test labels (bits): a+b: R 0.200, U a 0.100, U b 0.000, S 0.400 (much synergy)"
        in lines
    )
    assert "PID of synib's predictions (bits): a+b: R 0.200, U a 0.100, U b 0.000, S 0.450" in lines
    assert any(line.startswith("seeds needed (synib vs vanilla") and line.endswith(
        "test_acc 2, synergy_acc 4") for line in lines)  # fmt: skip


def test_report_from_real_prediction_pids() -> None:
    bits, other = np.array([0, 0, 1, 1] * 25), np.array([0, 1, 0, 1] * 25)
    y = bits ^ other
    states = discretise_modalities({"a": bits[:, None], "b": other[:, None]}, 2)
    labels = pairwise_pid(states, y)
    recs = []
    for seed in (0, 1):
        for method, pred in (("vanilla", bits), ("synib", y)):
            pid = [p.to_json() for p in prediction_pid(states, pred)]
            recs.append(run_record(method, seed, {"test_acc": float(np.mean(pred == y))}, pred, y,
                                   prediction_pid=pid))  # fmt: skip
    report = compare_report(recs, n_boot=20,
                            data_pid={"pairs": [p.to_json() for p in labels],
                                      "verdict": pid_verdict(labels)})  # fmt: skip
    assert report["methods"]["synib"]["prediction_pid"]["a+b"]["synergy"]["mean"] == pytest.approx(
        1.0, abs=1e-5
    )
    assert report["methods"]["vanilla"]["prediction_pid"]["a+b"]["unique"]["a"][
        "mean"
    ] == pytest.approx(1.0, abs=1e-5)
    assert report["data_pid"]["verdict"].startswith("much synergy (1.00 bits")
