"""``synib.run_job`` and ``synib.make_dataset`` through a real Celery worker, Redis, PostgreSQL
and a local Ray (tiny xor_pid trials)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import worker_process
from worker_process import JOB_TIMEOUT_S, job_status, wait_final
from worker_testing import (
    WorkerHarness,
    busy_ray_pids,
    ray_pids,
    tiny_config,
    tiny_pid_params,
    wait_for,
)

from infra.db import crud
from infra.db.models import JobEvent
from infra.storage import ArtifactStore, sha256_file
from worker import job_runner

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


def create_job(harness: WorkerHarness, owner_id: str, spec: dict[str, Any]) -> str:
    """A pending tiny built-in xor_pid dataset (seed 0) and a queued job on it."""
    return worker_process.create_job(harness, owner_id, spec, {**tiny_pid_params(), "seed": 0})


@pytest.fixture(scope="module")
def finished_job(worker_harness: WorkerHarness, owner_id: str) -> str:
    """2 methods x 2 lambda x 1 seed, 2 epochs (vanilla ignores lambda: 3 trials)."""
    spec = {
        "methods": ["vanilla", "synib"],
        "config": tiny_config(),
        "epochs": 2,
        "sweep": {"lambda": {"type": "grid", "values": [1.0, 10.0]}},
        "seeds": [0],
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "baseline": "vanilla",
    }
    job_id = create_job(worker_harness, owner_id, spec)
    worker_harness.send("synib.run_job", job_id)
    assert wait_final(worker_harness, job_id) == "succeeded"
    return job_id


def test_tiny_job_succeeds_with_trials_epochs_artifacts_and_report(
    worker_harness: WorkerHarness, finished_job: str
) -> None:
    store = ArtifactStore(worker_harness.settings.artifact_root)
    with worker_harness.sessions() as session:
        job = crud.get_job(session, job_id=finished_job)
        assert job is not None and job.failure_reason is None
        assert (job.trials_total, job.trials_done, job.progress) == (3, 3, 1.0)
        trials = crud.list_trials(session, job_id=finished_job)
        assert {t.trial_key for t in trials} == {
            "synib|lambda=1|seed=0",
            "synib|lambda=10|seed=0",
            "vanilla|seed=0",
        }
        for trial in trials:
            assert trial.status == "succeeded"
            assert trial.epochs_done == 2 and trial.best_epoch in (1, 2)
            assert 0.0 <= trial.metrics["test_acc"] <= 1.0 and "synergy_acc" in trial.metrics
            epochs = crud.list_epoch_metrics(session, trial_id=trial.id)
            assert [e.epoch for e in epochs] == [1, 2]  # unique (trial, epoch): no duplicates
            assert all("val_acc" in e.metrics and "train_loss" in e.metrics for e in epochs)
        models = [a for a in crud.list_artifacts(session, job_id=finished_job) if a.kind == "model"]
        assert sorted(a.trial_id for a in models) == sorted(t.id for t in trials)
        for artifact in models:
            path = store.resolve(artifact.path)
            assert artifact.path == f"jobs/{finished_job}/{artifact.trial_id}/model.zip"
            assert sha256_file(path) == (artifact.sha256, artifact.size_bytes)
        statuses = [
            e.data["status"]
            for e in crud.list_events(session, job_id=finished_job)
            if e.type == "status"
        ]
        assert statuses[0] == "queued" and statuses[1] == "running" and statuses[-1] == "succeeded"
        dataset = crud.get_dataset(session, dataset_id=job.dataset_id)
        assert dataset is not None and dataset.status == "ready" and dataset.sha256

    report = job.report
    assert report is not None and report["baseline"] == "vanilla"
    assert report["sweep_knobs"] == ["lambda"] and report["seeds"] == [0]
    synib = report["methods"]["synib"]
    assert synib["best_config"]["lambda"] in (1.0, 10.0)
    assert sorted(p["config"]["lambda"] for p in synib["sweep"]) == [1.0, 10.0]
    best = next(t for t in trials if t.id == synib["best_trial_id"])
    assert synib["metrics"]["test_acc"]["values"] == [best.metrics["test_acc"]]
    delta = synib["delta_vs_baseline"]["test_acc"]
    vanilla = next(t for t in trials if t.method == "vanilla")
    assert delta["delta"] == pytest.approx(best.metrics["test_acc"] - vanilla.metrics["test_acc"])
    assert delta["lo"] <= delta["delta"] <= delta["hi"]
    assert synib["best_artifact_id"] in {a.id for a in models}
    assert set(report["references"]["0"]) == {"a", "b"}
    # The PID of the test labels and of each method's predictions (cvxpy is in the dev extra).
    [pair] = report["data_pid"]["pairs"]
    assert pair["modalities"] == ["a", "b"] and pair["n"] == 300 and report["data_pid"]["verdict"]
    for entry in report["methods"].values():
        assert set(entry["prediction_pid"]) == {"a+b"}
        assert len(entry["prediction_pid"]["a+b"]["synergy"]["values"]) == 1  # one seed
    assert synib["seeds_needed"] == {}  # one seed: no spread to size from
    assert report["seeds_needed_for"] == {"gain": 0.05, "power": 0.8, "alpha": 0.05}
    # Where each trial ran, as it recorded it; the job's Tune experiment is gone once the
    # outputs are in the artifact store.
    for trial in trials:
        result = json.loads(
            store.resolve(f"jobs/{finished_job}/{trial.id}/result.json").read_text()
        )
        assert result["best_epoch"] == trial.best_epoch
        assert result["placement"]["pid"] > 0 and result["placement"]["node_id"]
    # The worker deletes the experiment just after it writes the final status.
    storage = Path(worker_harness.settings.tune_storage_path)
    assert storage.is_dir()
    wait_for(
        lambda: not (storage / f"job-{finished_job}").exists(), 30, "the Tune experiment deleted"
    )


def test_saved_predictions_match_the_stored_model(
    worker_harness: WorkerHarness, finished_job: str
) -> None:
    from synib_core import load
    from synib_core.data import load_npz

    store = ArtifactStore(worker_harness.settings.artifact_root)
    with worker_harness.sessions() as session:
        job = crud.get_job(session, job_id=finished_job)
        dataset = crud.get_dataset(session, dataset_id=job.dataset_id)  # type: ignore[union-attr]
        artifact = crud.list_artifacts(session, job_id=finished_job)[0]
    data = load_npz(store.resolve(dataset.path))  # type: ignore[union-attr, arg-type]
    test = data.split == 2
    model = load(store.resolve(artifact.path))
    pred = model.predict({m: x[test] for m, x in data.x.items()})
    saved = np.load(store.resolve(f"jobs/{finished_job}/{artifact.trial_id}/test_pred.npy"))
    np.testing.assert_array_equal(pred, saved)


def test_redelivered_run_job_does_nothing(
    worker_harness: WorkerHarness, finished_job: str, owner_id: str
) -> None:
    def event_count(job_id: str) -> int:
        with worker_harness.sessions() as session:
            return len(crud.list_events(session, job_id=job_id, limit=10_000))

    before = event_count(finished_job)
    worker_harness.send("synib.run_job", finished_job)
    # A marker task behind it on the same one-slot worker: once it is done, so is the duplicate.
    with worker_harness.sessions() as session:
        marker = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="marker",
            source="builtin",
            builtin_name="xor_spurious",
            params={"n_train": 20, "n_val": 10, "n_test": 10, "seed": 1},
            status="pending",
        )
    worker_harness.send("synib.make_dataset", marker.id)

    def marker_ready() -> bool:
        with worker_harness.sessions() as session:
            row = crud.get_dataset(session, dataset_id=marker.id)
            return row is not None and row.status == "ready"

    wait_for(marker_ready, 120, "the marker dataset")
    assert job_status(worker_harness, finished_job) == "succeeded"
    assert event_count(finished_job) == before

    # The same in process for a job another worker is running: left alone.
    running = create_job(worker_harness, owner_id, {"methods": ["vanilla"]})
    with worker_harness.sessions() as session:
        assert crud.claim_job(session, job_id=running, worker="someone-else") is not None
    status = job_runner.run_job(
        running,
        settings=worker_harness.settings,
        sessions=worker_harness.sessions,
        worker="me",
        task_id=None,
    )
    assert status == "skipped"
    with worker_harness.sessions() as session:
        job = crud.get_job(session, job_id=running)
        assert job is not None and (job.status, job.worker) == ("running", "someone-else")
        assert crud.list_trials(session, job_id=running) == []


def test_diverging_trial_fails_with_reason_and_job_succeeds(
    worker_harness: WorkerHarness, owner_id: str
) -> None:
    spec = {
        "methods": ["vanilla", {"name": "synib", "config": {"lr": 1e30}}],
        "config": tiny_config(),
        "epochs": 2,
        "sweep": {},
        "seeds": [0],
    }
    job_id = create_job(worker_harness, owner_id, spec)
    worker_harness.send("synib.run_job", job_id)
    assert wait_final(worker_harness, job_id) == "succeeded"
    with worker_harness.sessions() as session:
        trials = {t.method: t for t in crud.list_trials(session, job_id=job_id)}
        report = crud.get_job(session, job_id=job_id).report  # type: ignore[union-attr]
    assert trials["vanilla"].status == "succeeded"
    assert trials["synib"].status == "failed"
    assert trials["synib"].failure_reason.startswith("TrainingDiverged: ")  # type: ignore[union-attr]
    assert report["methods"]["synib"]["best_config"] is None
    assert report["methods"]["synib"]["trials_failed"] == 1

    # "Rerun failed trials": the failed trial runs again (a fresh Tune run of it alone) and
    # fails again with its reason; the succeeded one is neither run nor recorded again.
    def epoch_events() -> dict[str, int]:
        with worker_harness.sessions() as session:
            events = crud.list_events(session, job_id=job_id, limit=10_000)
        counts: dict[str, int] = {}
        for e in events:
            if e.type == "epoch":
                counts[e.data["trial_key"]] = counts.get(e.data["trial_key"], 0) + 1
        return counts

    before = epoch_events()
    with worker_harness.sessions() as session:
        assert crud.requeue_failed(session, job_id=job_id) == 1
    worker_harness.send("synib.run_job", job_id)
    assert wait_final(worker_harness, job_id) == "succeeded"
    with worker_harness.sessions() as session:
        again = {t.method: t for t in crud.list_trials(session, job_id=job_id)}
        events = crud.list_events(session, job_id=job_id, limit=10_000)
    assert again["synib"].status == "failed"
    assert again["synib"].failure_reason == trials["synib"].failure_reason
    assert again["vanilla"].finished_at == trials["vanilla"].finished_at
    assert epoch_events().get("vanilla|seed=0") == before.get("vanilla|seed=0") == 2
    reruns = [e for e in events if e.type == "trial" and e.data["trial_key"] == "synib|seed=0"]
    assert [e.data["status"] for e in reruns][-3:] == ["pending", "running", "failed"]


def test_cancel_stops_the_trials_processes(worker_harness: WorkerHarness, owner_id: str) -> None:
    # Quick references (2 epochs), long trials (their method config overrides the epochs).
    long = {"epochs": 2000, "batch_size": 8}
    spec = {
        "methods": [{"name": "vanilla", "config": long}, {"name": "synib", "config": long}],
        "config": tiny_config(),
        "epochs": 2,
        "sweep": {},
        "seeds": [0],
    }
    job_id = create_job(worker_harness, owner_id, spec)
    worker_harness.send("synib.run_job", job_id)

    def some_epoch_recorded() -> bool:
        with worker_harness.sessions() as session:
            return bool(session.query(JobEvent).filter_by(job_id=job_id, type="epoch").count())

    wait_for(some_epoch_recorded, JOB_TIMEOUT_S, f"a first epoch\n{worker_harness.log()[-2000:]}")
    marker = worker_harness.marker
    assert busy_ray_pids(marker), "the job's trial processes should be visible while it runs"
    with worker_harness.sessions() as session:
        crud.request_cancel(session, job_id=job_id)
    assert wait_final(worker_harness, job_id) == "cancelled"
    with worker_harness.sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
    assert trials and {t.status for t in trials} == {"cancelled"}
    assert all(t.epochs_done < 2000 for t in trials)
    # The trials' processes end; the worker's own Ray (kept for the next job) stays up.
    wait_for(lambda: not busy_ray_pids(marker), 60, "the trials' processes to exit")
    assert ray_pids(marker), "the worker's Ray should be kept for the next job"


def test_asha_stops_a_hopeless_trial_early(worker_harness: WorkerHarness, owner_id: str) -> None:
    """Trials run one at a time, so ASHA has the good trial's rung results when the
    tiny-learning-rate trials reach their first rung, and stops at least one of them."""
    spec = {
        "methods": ["vanilla"],
        "config": {**tiny_config(), "w_uni": 0.0},
        "epochs": 6,
        "sweep": {"lr": {"type": "grid", "values": [1e-2, 1e-7, 1e-8]}},
        "seeds": [0],
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "max_concurrent_trials": 1,
        "baseline": "vanilla",
    }
    job_id = create_job(worker_harness, owner_id, spec)
    worker_harness.send("synib.run_job", job_id)
    assert wait_final(worker_harness, job_id) == "succeeded"
    with worker_harness.sessions() as session:
        trials = {t.config["lr"]: t for t in crud.list_trials(session, job_id=job_id)}
    assert set(trials) == {1e-2, 1e-7, 1e-8}
    assert trials[1e-2].status == "succeeded" and trials[1e-2].epochs_done == 6
    stopped = [lr for lr, t in trials.items() if t.status == "stopped"]
    assert stopped and set(stopped) <= {1e-7, 1e-8}, {lr: t.status for lr, t in trials.items()}
    assert all(trials[lr].epochs_done < 6 for lr in stopped)
    # The record holds exactly the epochs the stopped trials reported to Tune.
    with worker_harness.sessions() as session:
        for lr in stopped:
            rows = crud.list_epoch_metrics(session, trial_id=trials[lr].id)
            assert [m.epoch for m in rows] == list(range(1, trials[lr].epochs_done + 1))
