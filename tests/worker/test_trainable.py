"""The function trainable (worker/trainable.py) under a real Ray Tune run in this process (local
Ray, no database): it reports every epoch with fit's state as checkpoint, then its outputs in a
final checkpoint; a failing trial's error is one line; a trial Tune restores starts from its
checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from worker_testing import tiny_config, tiny_pid_params

from infra.settings import Settings
from synib_core.data import MultimodalData, make_dataset
from synib_spec.jobs import Resources
from worker import ray_session
from worker.trainable import (
    MODEL_ZIP,
    PREDICTIONS,
    RESULT_JSON,
    TrialPayload,
    restore_from,
)
from worker.tune_callbacks import failure_reason
from worker.tune_runner import make_trainable

pytestmark = pytest.mark.slow

EPOCHS = 3


@pytest.fixture(scope="module")
def data() -> MultimodalData:
    return make_dataset("xor_pid", 0, **tiny_pid_params())


@pytest.fixture(scope="module")
def two_cpu_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    state = tmp_path_factory.mktemp("trainable")
    ray_session.ensure_ray(Settings(state_dir=state, cpus=2, gpus=0, ray_address=None))
    yield
    ray_session.shutdown_ray()


def payload(trial_id: str, **knobs: Any) -> TrialPayload:
    return TrialPayload(
        key=f"vanilla|{trial_id}",
        job_id="job",
        trial_id=trial_id,
        method="vanilla",
        seed=0,
        knobs={**tiny_config(), "epochs": EPOCHS, **knobs},
        threads=1,
        memory_mb=None,
    )


def run(data: MultimodalData, payloads: list[TrialPayload], storage: Path) -> tuple[Any, list]:
    """A Tune run of the payloads; (its ResultGrid, every result the driver got)."""
    import ray
    from ray import tune

    seen: list[dict[str, Any]] = []

    class Results(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:  # fmt: skip
            seen.append(dict(result))

    trainable = make_trainable(Resources(cpus_per_trial=1), ray.put(data), {})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(payloads)},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max"),
        run_config=tune.RunConfig(
            name="t", storage_path=str(storage), callbacks=[Results()], verbose=0
        ),
    )
    return tuner.fit(), seen


def test_every_epoch_is_reported_with_a_checkpoint_and_the_outputs_come_last(
    two_cpu_ray: None, data: MultimodalData, tmp_path: Path
) -> None:
    from synib_core import load

    grid, seen = run(data, [payload("ok")], tmp_path)
    assert [r.get("epoch") for r in seen] == [1, 2, 3, None]
    assert all(r["checkpoint_dir_name"] for r in seen)  # fit's state every epoch, then outputs
    assert all("val_acc" in r and "train_loss" in r for r in seen[:EPOCHS])
    final = seen[-1]
    assert final["final"] == 1 and 1 <= final["best_epoch"] <= EPOCHS and "test_acc" in final
    (result,) = list(grid)
    assert result.error is None and result.metrics["final"] == 1
    with result.checkpoint.as_directory() as folder:
        out = Path(folder)
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [MODEL_ZIP, PREDICTIONS, RESULT_JSON]
        )
        saved = json.loads((out / RESULT_JSON).read_text())
        model = load(out / MODEL_ZIP)
        test = data.split == 2
        pred = model.predict({m: x[test] for m, x in data.x.items()})
        np.testing.assert_array_equal(pred, np.load(out / PREDICTIONS))
    assert saved["best_epoch"] == final["best_epoch"]
    assert saved["metrics"]["test_acc"] == pytest.approx(final["test_acc"])
    place = saved["placement"]
    assert place["pid"] != os.getpid() and place["node_id"] and place["device"] == "cpu"
    assert place["gpu_ids"] == []


def test_a_failing_trial_ends_with_one_readable_line(
    two_cpu_ray: None, data: MultimodalData, tmp_path: Path
) -> None:
    grid, seen = run(data, [payload("diverges", lr=1e30)], tmp_path)
    (result,) = list(grid)
    reason = failure_reason(result.error)
    assert reason.startswith("TrainingDiverged: training diverged: loss is ")
    assert "\n" not in reason and "pid=" not in reason and "\x1b" not in reason
    assert seen == []  # it diverged in its first epoch: nothing reported


def test_a_restored_trial_starts_from_its_checkpoint(tmp_path: Path) -> None:
    from ray import tune

    state, final = tmp_path / "state", tmp_path / "final"
    state.mkdir()
    assert restore_from(None, state, final) is None and not list(state.iterdir())
    mid = tmp_path / "epoch_2"
    mid.mkdir()
    (mid / "train_state.pt").write_bytes(b"fit's state after epoch 2")
    assert (
        restore_from(tune.Checkpoint.from_directory(str(mid)), state, final) is None
    )  # fit resumes from the copy
    assert (state / "train_state.pt").read_bytes() == b"fit's state after epoch 2"
    assert (mid / "train_state.pt").is_file()  # a copy: the stored checkpoint stays as it was
    done = tmp_path / "final_checkpoint"
    done.mkdir()
    (done / RESULT_JSON).write_text(json.dumps({"best_epoch": 2, "metrics": {"val_acc": 0.5}}))
    # Finished before its worker died: reported again as it was, not trained again.
    assert restore_from(tune.Checkpoint.from_directory(str(done)), state, final) == {
        "best_epoch": 2,
        "metrics": {"val_acc": 0.5},
    }
    assert (final / RESULT_JSON).is_file()


@pytest.mark.postgres
def test_tune_results_fill_in_what_the_database_missed(
    two_cpu_ray: None, data: MultimodalData, tmp_path: Path, pg_database_url: str
) -> None:
    """``sync_results`` after a run whose live writes got lost (a database outage, a worker that
    died before its callbacks wrote): the finished trial's outputs reach the artifact store and
    its row is ``succeeded``, the failed one's is ``failed`` with its reason, the missing
    epochs are written from Tune's own results, and a second pass changes nothing."""
    from infra.db import crud
    from infra.db.session import session_factory
    from infra.storage import ArtifactStore
    from worker.tune_results import sync_results

    sessions = session_factory(pg_database_url)
    with sessions() as session:
        owner = crud.create_user(session, name=f"sync-{tmp_path.name}")
        dataset = crud.create_dataset(
            session, owner_id=owner.id, name="d", source="upload", params={}, status="ready"
        )
        job = crud.create_job(
            session, owner_id=owner.id, dataset_id=dataset.id, name="j", spec={}, trials_total=2
        )
        rows = {
            key: crud.upsert_trial(
                session, job_id=job.id, trial_key=key, method="vanilla", seed=0, config={}
            )
            for key in ("ok", "diverges")
        }
        # Only epoch 1 of the good trial made it (kept as written, never overwritten).
        crud.upsert_epoch_metrics(session, trial_id=rows["ok"].id, epoch=1, metrics={"x": 1.0})
    ok, bad = payload(rows["ok"].id), payload(rows["diverges"].id, lr=1e30)
    grid, _ = run(data, [ok, bad], tmp_path / "tune")
    store = ArtifactStore(tmp_path / "artifacts")

    for _ in range(2):  # the second pass finds nothing left to do
        sync_results(sessions, store, job.id, grid, retry_s=0, completed=True)
        with sessions() as session:
            good = crud.get_trial(session, trial_id=rows["ok"].id)
            failed = crud.get_trial(session, trial_id=rows["diverges"].id)
            epochs = crud.list_epoch_metrics(session, trial_id=rows["ok"].id)
            events = crud.list_events(session, job_id=job.id, limit=1000)
        assert good is not None and failed is not None
        saved = json.loads(store.resolve(f"jobs/{job.id}/{good.id}/{RESULT_JSON}").read_text())
        assert (good.status, good.best_epoch) == ("succeeded", saved["best_epoch"])
        assert good.metrics == saved["metrics"]
        for name in (MODEL_ZIP, PREDICTIONS):
            assert store.resolve(f"jobs/{job.id}/{good.id}/{name}").is_file()
        assert failed.status == "failed"
        assert failed.failure_reason.startswith("TrainingDiverged: training diverged")  # type: ignore[union-attr]
        assert [e.epoch for e in epochs] == [1, 2, 3] and epochs[0].metrics == {"x": 1.0}
        assert {"train_loss", "val_acc"} <= set(epochs[1].metrics)
        assert sum(e.type == "epoch" for e in events) == 3
