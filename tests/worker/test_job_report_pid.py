"""The job report's PID and seeds-needed keys on a tiny hand-made case, checked against the
synib_core functions they come from (the report computes nothing of its own)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from synib_spec.jobs import parse_job_spec
from worker.job_report import TestSplit, TrialOutcome, build_report, pid_states

pytest.importorskip("cvxpy")

# Two binary modalities and a label that needs both: Y = A xor B (1 bit of synergy).
A = np.array([0, 0, 1, 1] * 10)
B = np.array([0, 1, 0, 1] * 10)
Y = A ^ B
X_TEST = {"a": A[:, None].astype(np.float32), "b": B[:, None].astype(np.float32)}
PREDS = {
    "v0": A.copy(),  # vanilla predicts from a alone (accuracy 0.5)
    "v1": B.copy(),
    "v2": A.copy(),
    "s0": Y.copy(),  # synib gets the xor (accuracy 1.0)
    "s1": np.where(np.arange(40) < 4, 1 - Y, Y),  # 36/40
    "s2": Y.copy(),
}
ACC = {tid: float(np.mean(p == Y)) for tid, p in PREDS.items()}
SYN = {"v0": 0.40, "v1": 0.55, "v2": 0.50, "s0": 0.90, "s1": 0.60, "s2": 0.85}


def trials() -> list[TrialOutcome]:
    out = []
    for tid in PREDS:
        method = "vanilla" if tid.startswith("v") else "synib"
        sweep = {} if method == "vanilla" else {"lambda": 10.0}
        metrics = {"val_acc": 0.8, "test_acc": ACC[tid], "synergy_acc": SYN[tid]}
        out.append(TrialOutcome(tid, tid, method, int(tid[1]), "succeeded", sweep, metrics))
    return out


def report(test: TestSplit) -> dict:
    return build_report(
        job_id="j",
        spec=parse_job_spec(
            {
                "dataset_id": "d",
                "methods": ["vanilla", "synib"],
                "sweep": {"lambda": {"type": "grid", "values": [10]}},
            }
        ),
        trials=trials(),
        test=test,
        preds=PREDS.get,
        artifacts={},
        references={},
    )


def test_pid_and_seeds_needed_match_the_core_functions() -> None:
    from synib_core.metrics import seeds_needed
    from synib_core.metrics.discretise import default_clusters, discretise_modalities
    from synib_core.metrics.pid import pairwise_pid, prediction_pid
    from synib_core.metrics.pid_verdict import pid_verdict
    from synib_core.reporting import pid_summary

    states, k, note = pid_states(X_TEST, Y)
    assert note is None and k == default_clusters(40, 2)
    assert states is not None
    expected_states = discretise_modalities(X_TEST, 2, clusters=k)
    assert all(np.array_equal(states[m], expected_states[m]) for m in ("a", "b"))
    rep = report(TestSplit(Y, None, {}, pid_states=states, pid_clusters=k))

    labels = pairwise_pid(states, Y)
    assert rep["data_pid"] == {
        "pairs": [p.to_json() for p in labels],
        "verdict": pid_verdict(labels),
        "clusters": k,
    }
    [pair] = rep["data_pid"]["pairs"]
    assert pair["synergy"] == pytest.approx(1.0, abs=1e-6)
    assert rep["data_pid"]["verdict"].startswith("much synergy")

    for method, tids in (("vanilla", ["v0", "v1", "v2"]), ("synib", ["s0", "s1", "s2"])):
        expected = pid_summary(
            [[p.to_json() for p in prediction_pid(states, PREDS[t])] for t in tids]
        )
        assert rep["methods"][method]["prediction_pid"] == expected
    synib_pid = rep["methods"]["synib"]["prediction_pid"]["a+b"]
    vanilla_pid = rep["methods"]["vanilla"]["prediction_pid"]["a+b"]
    assert synib_pid["synergy"]["values"][0] == pytest.approx(1.0, abs=1e-6)  # the xor itself
    assert vanilla_pid["synergy"]["mean"] == pytest.approx(0.0, abs=1e-6)  # one modality each

    deltas = {
        m: [metric[f"s{s}"] - metric[f"v{s}"] for s in range(3)]
        for m, metric in (("test_acc", ACC), ("synergy_acc", SYN))
    }
    assert rep["methods"]["synib"]["seeds_needed"] == {
        "test_acc": seeds_needed(deltas["test_acc"], 0.05, power=0.8),
        "synergy_acc": seeds_needed(deltas["synergy_acc"], 0.05, power=0.8),
    }
    assert rep["methods"]["synib"]["seeds_needed"]["synergy_acc"] > 2  # a noisy delta
    assert "seeds_needed" not in rep["methods"]["vanilla"]  # the baseline itself
    assert rep["seeds_needed_for"] == {"gain": 0.05, "power": 0.8, "alpha": 0.05}
    assert "pid_note" not in rep


def test_without_cvxpy_the_report_leaves_pid_out_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy: ImportError
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    states, k, note = pid_states(X_TEST, Y)
    assert states is None and k is None
    assert (
        note == "PID left out: PID estimates need cvxpy: pip install 'synib[pid]' (on the workers)"
    )
    rep = report(TestSplit(Y, None, {}, pid_note=note))
    assert rep["pid_note"] == note
    assert "data_pid" not in rep
    assert all("prediction_pid" not in e for e in rep["methods"].values())
    assert rep["methods"]["synib"]["seeds_needed"]  # no cvxpy needed for the seeds
    # and when cvxpy disappears after the discretisation, the solver's error is the note
    monkeypatch.undo()
    states, k, _ = pid_states(X_TEST, Y)
    monkeypatch.setitem(sys.modules, "cvxpy", None)
    rep = report(TestSplit(Y, None, {}, pid_states=states, pid_clusters=k))
    assert "data_pid" not in rep and rep["pid_note"].startswith("PID left out: PID estimates need")


def test_one_modality_has_no_pid() -> None:
    states, _, note = pid_states({"a": X_TEST["a"]}, Y)
    assert states is None and note == "PID left out: it needs at least two modalities"


def test_a_solver_error_leaves_the_pid_out_and_the_report_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import synib_core.metrics.pid as pid_module

    states, k, _ = pid_states(X_TEST, Y)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ArithmeticError("solver gave up")

    monkeypatch.setattr(pid_module, "prediction_pid", broken)
    rep = report(TestSplit(Y, None, {}, pid_states=states, pid_clusters=k))
    assert "data_pid" in rep and all("prediction_pid" not in e for e in rep["methods"].values())
    monkeypatch.setattr(pid_module, "pairwise_pid", broken)
    rep = report(TestSplit(Y, None, {}, pid_states=states, pid_clusters=k))
    assert rep["pid_note"] == "PID left out: ArithmeticError: solver gave up"
    assert rep["methods"]["synib"]["metrics"]["test_acc"]["mean"] == pytest.approx(
        0.9 + 0.1 * 2 / 3
    )
