"""The trial's training task (``worker.trainable.trial_epochs``), driven in-process as the plain
generator it is (Ray runs the same function as a streaming-generator task): it yields every
epoch, then an empty item (Tune handled the epoch), then the final result; it trains at most one
epoch ahead of its consumer; closing it stops training at the next epoch's end; a failure
writes ``error.json`` and raises ``TrialError``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from worker_testing import tiny_config, tiny_pid_params

from synib_core.data import make_dataset
from worker import trainable
from worker.job_resume import checkpoint_history
from worker.trainable import CHECKPOINT_DIR, TrialError, TrialPayload, trial_epochs

EPOCHS = 4


@pytest.fixture(scope="module")
def data() -> Any:
    return make_dataset("xor_pid", 0, **tiny_pid_params())


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside a Ray worker, ray.get_gpu_ids() would start a local Ray.
    monkeypatch.setattr(trainable, "placement", lambda device: {"device": "cpu"})


def payload(out_dir: Path, **knobs: Any) -> TrialPayload:
    return TrialPayload(
        key="synib|seed=0",
        job_id="job",
        trial_id="trial",
        method="synib",
        seed=0,
        knobs={**tiny_config(), "epochs": EPOCHS, **knobs},
        cpus=1,
        out_dir=str(out_dir),
    )


def epochs_trained(out_dir: Path) -> int:
    return len(checkpoint_history(out_dir / CHECKPOINT_DIR))


def wait_until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_yields_each_epoch_then_the_final_result(tmp_path: Path, data: Any) -> None:
    items = list(trial_epochs(payload(tmp_path), data, None))
    epochs = [item["epoch"] for item in items if "epoch" in item]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    assert all("val_acc" in e and "train_loss" in e for e in epochs)
    # Each epoch is followed by an empty item: the consumer came back after handling it.
    assert items[1::2][:EPOCHS] == [{}] * EPOCHS
    final = items[-1]["final"]
    assert 1 <= final["best_epoch"] <= EPOCHS and "test_acc" in final["metrics"]
    assert (tmp_path / "model.zip").is_file() and (tmp_path / "result.json").is_file()


def test_trains_at_most_one_epoch_ahead_and_stops_when_closed(tmp_path: Path, data: Any) -> None:
    epochs = trial_epochs(payload(tmp_path, epochs=50), data, None)
    assert next(epochs)["epoch"]["epoch"] == 1
    # Epoch 1 is out but not yet handled: epoch 2 trains, epoch 3 must wait.
    wait_until(lambda: epochs_trained(tmp_path) >= 2)
    time.sleep(1.0)
    assert epochs_trained(tmp_path) == 2
    assert next(epochs) == {}  # epoch 1 handled: the task may go on
    assert next(epochs)["epoch"]["epoch"] == 2
    wait_until(lambda: epochs_trained(tmp_path) >= 3)
    epochs.close()  # what Ray's cancel does to the task: training stops at the epoch's end
    assert epochs_trained(tmp_path) == 3
    assert not (tmp_path / "result.json").exists()


def test_a_failing_trial_raises_its_reason_and_writes_error_json(tmp_path: Path, data: Any) -> None:
    with pytest.raises(TrialError, match=r"^TrainingDiverged: training diverged: loss is"):
        list(trial_epochs(payload(tmp_path, lr=1e30), data, None))
    assert (tmp_path / "error.json").read_text().count("TrainingDiverged") >= 1
