"""The job report and the Tune helpers, on hand-built trials (no Ray, no database)."""

from __future__ import annotations

import numpy as np
import pytest

from synib_spec.jobs import JobSpec, parse_job_spec
from worker.job_report import TestSplit, TrialOutcome, build_report
from worker.references import references_beside_trials
from worker.tune_callbacks import failure_reason, metrics_of
from worker.tune_runner import check_fits, make_scheduler

Y = np.array([0, 1, 0, 1])
# Test predictions per trial: vanilla gets 2/4 right, synib lambda=10 gets 4/4, lambda=1 gets 3/4.
PREDS = {
    "v0": np.array([0, 0, 1, 1]),
    "v1": np.array([0, 0, 1, 1]),
    "s1_0": np.array([0, 1, 0, 0]),
    "s1_1": np.array([0, 1, 0, 0]),
    "s10_0": np.array([0, 1, 0, 1]),
    "s10_1": np.array([0, 1, 0, 1]),
}


def outcome(tid: str, method: str, seed: int, lam: float | None, val: float) -> TrialOutcome:
    test_acc = float(np.mean(PREDS[tid] == Y))
    sweep = {} if lam is None else {"lambda": lam}
    return TrialOutcome(
        tid, tid, method, seed, "succeeded", sweep, {"val_acc": val, "test_acc": test_acc}
    )


def report() -> dict:
    trials = [
        outcome("v0", "vanilla", 0, None, 0.5),
        outcome("v1", "vanilla", 1, None, 0.7),
        outcome("s1_0", "synib", 0, 1.0, 0.9),
        outcome("s1_1", "synib", 1, 1.0, 0.5),  # mean val 0.70
        outcome("s10_0", "synib", 0, 10.0, 0.8),
        outcome("s10_1", "synib", 1, 10.0, 0.7),  # mean val 0.75: the best point
        TrialOutcome("bad", "bad", "synib", 2, "failed", {"lambda": 1.0}),
    ]
    # references: modality a always right, b always wrong -> no synergy sample (all "unique_a")
    refs = {s: {"a": Y.copy(), "b": 1 - Y} for s in (0, 1)}
    return build_report(
        job_id="j",
        spec=parse_job_spec(
            {
                "dataset_id": "d",
                "methods": ["vanilla", "synib"],
                "sweep": {"lambda": {"type": "grid", "values": [1, 10]}},
                "baseline": "vanilla",
            }
        ),
        trials=trials,
        test=TestSplit(y=Y, group=np.array(["s", "s", "r", "r"]), references=refs),
        preds=lambda tid: PREDS.get(tid),
        artifacts={"s10_0": "art-s10-0", "v1": "art-v1"},
        references={"0": {"a": {"test_acc": 1.0}}},
    )


def test_best_point_is_chosen_by_mean_validation_accuracy() -> None:
    synib = report()["methods"]["synib"]
    assert synib["best_config"] == {"lambda": 10.0}
    assert synib["best_trial_id"] == "s10_0"  # higher val_acc of the two seeds
    assert synib["best_artifact_id"] == "art-s10-0"
    assert synib["metrics"]["test_acc"] == {"mean": 1.0, "std": 0.0, "values": [1.0, 1.0]}
    assert synib["metrics"]["val_acc"]["mean"] == pytest.approx(0.75)
    assert (synib["trials_succeeded"], synib["trials_failed"]) == (4, 1)


def test_sweep_curve_has_one_point_per_config() -> None:
    sweep = report()["methods"]["synib"]["sweep"]
    by_lambda = {p["config"]["lambda"]: p for p in sweep}
    assert by_lambda[1.0]["val_acc"]["mean"] == pytest.approx(0.7)
    assert by_lambda[1.0]["test_acc"] == {"mean": 0.75, "std": 0.0}
    assert by_lambda[10.0]["val_acc"]["std"] == pytest.approx(0.05)


def test_deltas_against_the_baseline_are_paired_and_per_group() -> None:
    rep = report()
    delta = rep["methods"]["synib"]["delta_vs_baseline"]
    assert delta["test_acc"]["delta"] == pytest.approx(1.0 - 0.5)
    assert delta["test_acc"]["lo"] <= 0.5 <= delta["test_acc"]["hi"]
    # group "s" (first two samples): synib 2/2, vanilla 1/2; group "r": synib 2/2, vanilla 1/2
    assert delta["group_s_acc"]["delta"] == pytest.approx(0.5)
    assert delta["group_r_acc"]["delta"] == pytest.approx(0.5)
    assert "synergy_acc" not in delta  # the synergy subset is empty
    assert rep["methods"]["vanilla"]["delta_vs_baseline"] == {}
    assert rep["methods"]["vanilla"]["best_artifact_id"] == "art-v1"
    assert rep["seeds"] == [0, 1, 2] and rep["sweep_knobs"] == ["lambda"]


def test_the_headline_is_the_delta_the_verdict_is_about_with_its_ci() -> None:
    """What the jobs list shows: no synergy subset here, so the test_acc delta, as in the
    verdict; none for the baseline."""
    rep = report()
    test_acc = rep["methods"]["synib"]["delta_vs_baseline"]["test_acc"]
    assert rep["headline"] == {"synib": {"metric": "test_acc", **test_acc}}
    assert rep["verdicts"]["synib"].startswith(
        f"synib vs vanilla: test_acc {test_acc['delta']:+.3f} [{test_acc['lo']:+.3f}, "
    )


def test_metrics_of_drops_tune_bookkeeping() -> None:
    result = {"val_acc": 0.5, "epoch": 3, "training_iteration": 3, "done": False, "pid": 7}
    assert metrics_of({**result, "hostname": "h", "flag": True}) == {"val_acc": 0.5}


def test_failure_reason_is_one_line() -> None:
    import ray

    from worker.trainable import TrialFailed
    from worker.tune_callbacks import PROCESS_DIED

    diverged = TrialFailed("TrainingDiverged: training diverged: loss is nan at epoch 2")
    # What Tune hands back for a trainable that raised: Ray's task error around the cause.
    wrapped = ray.exceptions.RayTaskError(
        "train", "Traceback (most recent call last): ...", diverged
    )
    assert failure_reason(wrapped) == str(diverged)
    assert failure_reason(diverged) == str(diverged)
    assert failure_reason(ray.exceptions.RayTaskError("f", "tb", KeyError("x"))) == "KeyError: 'x'"
    assert failure_reason(ray.exceptions.ActorDiedError()) == PROCESS_DIED
    assert failure_reason(None) == PROCESS_DIED
    assert "\n" not in PROCESS_DIED and "died" in PROCESS_DIED
    # A cause Ray could not bring back (it did not pickle): Ray's error with the remote traceback,
    # colour codes, pid and node IP in its message. Only its type is named; the log has the rest.
    remote = (
        "\x1b[36mray::reference_predictions()\x1b[39m (pid=12985, ip=192.0.2.2)\n"
        '  File "/srv/synib/worker/trainable.py", line 267, in reference_predictions'
    )
    lost = ray.exceptions.UnserializableException(remote)
    assert failure_reason(ray.exceptions.RayTaskError("f", remote, lost)) == (
        "UnserializableException (details in the worker log)"
    )
    coloured = ValueError("\x1b[31mbad\x1b[0m value\n  on two lines")
    assert failure_reason(coloured) == "ValueError: bad value on two lines"


def spec(**fields: object) -> JobSpec:
    return parse_job_spec({"dataset_id": "d", "methods": ["vanilla", "synib"], **fields})


def test_scheduler_resources_and_report_read_the_typed_spec() -> None:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    assert isinstance(make_scheduler(spec(), 5), FIFOScheduler)
    asha = make_scheduler(spec(scheduler={"type": "asha", "grace_period": 2}), 5)
    assert isinstance(asha, ASHAScheduler)
    # One-thread CPU trials train beside the references; GPU or multi-thread ones do not.
    assert references_beside_trials(spec().resources)
    assert references_beside_trials(spec(resources={"cpus_per_trial": 0.5}).resources)
    assert not references_beside_trials(spec(resources={"cpus_per_trial": 2}).resources)
    assert not references_beside_trials(spec(resources={"gpus_per_trial": 0.5}).resources)
    check_fits(spec(resources={"cpus_per_trial": 2}).resources, {"CPU": 2.0})
    with pytest.raises(ValueError, match=r"^resources\.gpus_per_trial: each trial asks for 1 "):
        check_fits(spec(resources={"gpus_per_trial": 1}).resources, {"CPU": 2.0})
    # A spec without "sweep" gets the default lambda sweep: the report names it.
    assert spec().sweep and build_report(
        job_id="j",
        spec=spec(),
        trials=[],
        test=TestSplit(y=Y, group=None, references={}),
        preds=lambda tid: None,
        artifacts={},
        references={},
    )["sweep_knobs"] == ["lambda"]


def test_lambda_zero_is_reported_unless_a_penalty_beats_it_beyond_the_noise() -> None:
    def trials(val_penalty: float) -> list[TrialOutcome]:
        return [
            outcome("v0", "vanilla", 0, None, 0.9),
            outcome("v1", "vanilla", 1, None, 0.9),
            outcome("v0", "synib", 0, 0.0, 0.9),  # lambda = 0: vanilla's model
            outcome("v1", "synib", 1, 0.0, 0.9),
            outcome("s10_0", "synib", 0, 10.0, val_penalty),
            outcome("s10_1", "synib", 1, 10.0, val_penalty),
        ]

    def synib_at(val_penalty: float, n_val: int | None) -> dict:
        rep = build_report(
            job_id="j",
            spec=parse_job_spec(
                {
                    "dataset_id": "d",
                    "methods": ["vanilla", "synib"],
                    "sweep": {"lambda": {"type": "grid", "values": [0, 10]}},
                }
            ),
            trials=trials(val_penalty),
            test=TestSplit(y=Y, group=None, references={}, n_val=n_val),
            preds=lambda tid: PREDS.get(tid),
            artifacts={},
            references={},
        )
        return {"entry": rep["methods"]["synib"], "verdict": rep["verdicts"]["synib"]}

    # noise margin at p = 0.9, 400 samples, 2 seeds: sqrt(0.09 / 800) = 0.0106
    within = synib_at(0.91, n_val=400)
    assert within["entry"]["best_config"] == {"lambda": 0.0}
    assert within["entry"]["delta_vs_baseline"]["test_acc"]["delta"] == 0.0
    assert "did not beat vanilla" in within["verdict"] and "(no winner)" in within["verdict"]
    beyond = synib_at(0.92, n_val=400)
    assert beyond["entry"]["best_config"] == {"lambda": 10.0}
    assert synib_at(0.91, n_val=None)["entry"]["best_config"] == {"lambda": 10.0}  # argmax
