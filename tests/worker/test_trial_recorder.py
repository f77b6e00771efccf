"""The driver-side Tune hooks (worker/tune_callbacks.py) without Ray or a database: the
recorder's status and epoch writes are captured, and the hooks' pickled form (what Tune keeps
with an experiment and hands back on ``Tuner.restore``) resolves to the live hooks of the job in
the process that unpickles it."""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

from worker.tune_callbacks import (
    CancelWatch,
    TrialRecorder,
    live_hooks,
    live_recorder,
    live_watch,
)


class CapturingRecorder(TrialRecorder):
    """A recorder whose writes land in ``writes`` instead of the database."""

    def __init__(self, watch: CancelWatch | None = None) -> None:
        super().__init__("sqlite://", watch or CancelWatch("sqlite://", "job"), retry_s=0)
        self.writes: list[tuple[str, str, dict[str, Any]]] = []

    def _set_status(self, trial_id: str, status: str, **kwargs: Any) -> None:
        self.writes.append((trial_id, status, kwargs))

    def _write_epoch(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None:
        self.writes.append((trial_id, f"epoch {epoch}", metrics))


def fake_trial(trial_id: str) -> Any:
    return SimpleNamespace(config={"trial": {"trial_id": trial_id, "key": f"vanilla|{trial_id}"}})


def test_final_report_marks_the_trial_succeeded_at_once_and_only_once() -> None:
    rec = CapturingRecorder()
    trial = fake_trial("t1")
    rec.on_trial_start(0, [], trial)
    rec.on_trial_result(0, [], trial, {"epoch": 1, "val_acc": 0.5, "training_iteration": 1})
    rec.on_trial_result(
        0, [], trial, {"val_acc": 0.75, "test_acc": 0.5, "final": 1, "best_epoch": 1}
    )
    assert rec.writes == [
        ("t1", "running", {}),
        ("t1", "epoch 1", {"val_acc": 0.5}),
        ("t1", "succeeded", {"metrics": {"val_acc": 0.75, "test_acc": 0.5}, "best_epoch": 1}),
    ]
    rec.on_trial_start(0, [], trial)  # a late start (a reused actor) must not undo it
    rec.on_trial_complete(0, [], trial)
    assert len(rec.writes) == 3


def test_a_trial_ending_without_its_final_report_is_stopped_or_cancelled() -> None:
    rec = CapturingRecorder()
    rec.on_trial_result(0, [], fake_trial("t2"), {"epoch": 1, "val_acc": 0.25})
    rec.on_trial_complete(0, [], fake_trial("t2"))  # the scheduler (ASHA) stopped it
    assert rec.writes[-1] == ("t2", "stopped", {"metrics": {"val_acc": 0.25}})
    rec.watch.cancelled = True
    rec.on_trial_complete(0, [], fake_trial("t3"))
    assert rec.writes[-1] == ("t3", "cancelled", {"metrics": None})
    rec.watch.cancelled = False
    rec.watch.interrupt("the job exceeded the worker's time limit")
    rec.on_trial_complete(0, [], fake_trial("t4"))
    assert rec.writes[-1] == (
        "t4",
        "failed",
        {
            "failure_reason": "the job ended before this trial finished: the job exceeded "
            "the worker's time limit",
            "metrics": None,
        },
    )


def test_a_restored_run_does_not_record_the_epochs_it_trains_again() -> None:
    rec = CapturingRecorder()
    rec.resumed_epochs = {"t5": 3}  # the database holds epochs 1-3; Tune resumes from epoch 2
    for epoch in (3, 4):
        rec.on_trial_result(0, [], fake_trial("t5"), {"epoch": epoch, "val_acc": 0.5})
    assert rec.writes == [("t5", "epoch 4", {"val_acc": 0.5})]


def test_pickled_hooks_come_back_as_the_live_hooks_of_their_job() -> None:
    watch = CancelWatch("sqlite://", "job-a", worker="worker-2/42")
    recorder = CapturingRecorder(watch)
    # What Tune saved with the experiment (pickled by another worker, with its own hooks).
    saved = pickle.dumps((CancelWatch("sqlite://", "job-a", worker="worker-1/7"), recorder))
    with live_hooks(watch, recorder):
        restored_watch, restored_recorder = pickle.loads(saved)
        assert restored_watch is watch and restored_recorder is recorder
        assert live_watch("sqlite://", "job-a").worker == "worker-2/42"
    # No job of that id runs here: fresh hooks, not fenced to any worker.
    orphan_watch, orphan_recorder = pickle.loads(saved)
    assert orphan_watch is not watch and orphan_watch.worker is None
    assert orphan_recorder is not recorder and orphan_recorder.watch.job_id == "job-a"
    assert live_recorder("sqlite://", "job-b").watch.job_id == "job-b"
