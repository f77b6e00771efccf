"""The driver-side trial recorder's status writes and the signal handlers kept across jobs
(no Ray, no database: the writes are captured)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from worker.ray_session import restore_signal_handlers, signal_handlers
from worker.tune_callbacks import CancelWatch, TrialRecorder


class CapturingRecorder(TrialRecorder):
    """A recorder whose status writes land in ``writes`` instead of the database."""

    def __init__(self) -> None:
        # retry_s=0: the epoch write (no tables in this in-memory database) fails at once.
        super().__init__("sqlite://", CancelWatch("sqlite://", "job"), retry_s=0)
        self.writes: list[tuple[str, str, dict[str, Any]]] = []

    def _set_status(self, trial_id: str, status: str, **kwargs: Any) -> None:
        self.writes.append((trial_id, status, kwargs))


def fake_trial(trial_id: str, out_dir: Path) -> Any:
    payload = {"trial_id": trial_id, "key": f"vanilla|seed={trial_id}", "out_dir": str(out_dir)}
    return SimpleNamespace(config={"trial": payload}, error_file=None)


def test_final_report_marks_the_trial_succeeded_at_once_and_only_once(tmp_path: Path) -> None:
    rec = CapturingRecorder()
    trial = fake_trial("t1", tmp_path)
    rec.on_trial_start(0, [], trial)
    rec.on_trial_result(0, [], trial, {"epoch": 1, "val_acc": 0.5, "training_iteration": 1})
    rec.on_trial_result(
        0, [], trial, {"val_acc": 0.75, "test_acc": 0.5, "final": 1, "best_epoch": 1}
    )
    assert rec.writes == [
        ("t1", "running", {}),
        ("t1", "succeeded", {"metrics": {"val_acc": 0.75, "test_acc": 0.5}, "best_epoch": 1}),
    ]
    rec.on_trial_start(0, [], trial)  # a late start (reused actor) must not undo it
    rec.on_trial_complete(0, [], trial)
    assert len(rec.writes) == 2


def test_completion_without_final_report_uses_the_saved_result(tmp_path: Path) -> None:
    for name in ("model.zip", "test_pred.npy"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "result.json").write_text(json.dumps({"best_epoch": 3, "metrics": {"val_acc": 1}}))
    rec = CapturingRecorder()
    rec.on_trial_complete(0, [], fake_trial("t2", tmp_path))
    assert rec.writes == [("t2", "succeeded", {"metrics": {"val_acc": 1.0}, "best_epoch": 3})]
    # Without complete outputs (and no cancel): stopped early, with the last epoch's metrics.
    other = CapturingRecorder()
    other.on_trial_complete(0, [], fake_trial("t3", tmp_path / "missing"))
    assert other.writes == [("t3", "stopped", {"metrics": None})]


def test_signal_handlers_replaced_during_a_job_are_restored() -> None:
    def mine(signum: int, frame: Any) -> None:
        return None

    before = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, mine)
    try:
        saved = signal_handlers()
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # what Tune's fit does to SIGUSR1
        restore_signal_handlers(saved)
        assert signal.getsignal(signal.SIGUSR1) is mine
    finally:
        signal.signal(signal.SIGUSR1, before)
