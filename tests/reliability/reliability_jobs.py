"""Job helpers of the reliability tests: tiny specs, creating and sending jobs, and reading
back what the database holds (statuses, epoch rows, epoch events)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reliability_harness import wait_for


def tiny_spec(methods: list[Any], epochs: int, n_train: int = 200) -> dict[str, Any]:
    """A job spec with tiny models (about a tenth of a second per epoch here)."""
    return {
        "methods": methods,
        "config": {"hidden": 8, "encoder_layers": 1, "fusion_hidden": 8, "batch_size": 64},
        "epochs": epochs,
        "sweep": {},
        "seeds": [0],
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "baseline": "vanilla",
        "_n_train": n_train,
    }


def create_job(sessions: Any, owner_id: str, spec: dict[str, Any]) -> str:
    """A pending built-in xor_pid dataset and a queued job on it; the job id."""
    from infra.db import crud

    n_train = int(spec.pop("_n_train", 200))
    with sessions() as session:
        dataset = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="tiny-pid",
            source="builtin",
            builtin_name="xor_pid",
            params={"n_train": n_train, "n_val": 60, "n_test": 200, "seed": 0},
            status="pending",
        )
        job = crud.create_job(
            session,
            owner_id=owner_id,
            dataset_id=dataset.id,
            name="r",
            spec={**spec, "dataset_id": dataset.id},
            trials_total=0,
        )
        return str(job.id)


def send(settings: Any, task: str, object_id: str) -> str | None:
    from infra.broker import TaskProducer

    producer = TaskProducer(settings)
    try:
        return producer.send(task, object_id)
    finally:
        producer.close()


def job_of(sessions: Any, job_id: str) -> Any:
    from infra.db import crud

    with sessions() as session:
        job = crud.get_job(session, job_id=job_id)
        assert job is not None
        return job


def epochs_by_trial(sessions: Any, job_id: str) -> dict[str, list[int]]:
    """trial_key -> the epochs that have a row, in order."""
    from sqlalchemy import select

    from infra.db.models import EpochMetric, Trial

    with sessions() as session:
        stmt_keys = select(Trial.id, Trial.trial_key).where(Trial.job_id == job_id)
        keys = {str(i): str(k) for i, k in session.execute(stmt_keys).all()}
        stmt = (
            select(EpochMetric.trial_id, EpochMetric.epoch)
            .join(Trial, Trial.id == EpochMetric.trial_id)
            .where(Trial.job_id == job_id)
            .order_by(EpochMetric.trial_id, EpochMetric.epoch)
        )
        out: dict[str, list[int]] = {key: [] for key in keys.values()}
        for trial_id, epoch in session.execute(stmt):
            out[keys[trial_id]].append(int(epoch))
    return out


def epoch_event_counts(sessions: Any, job_id: str) -> dict[tuple[str, int], int]:
    """(trial_key, epoch) -> how many ``epoch`` events were written (1 unless replayed)."""
    from sqlalchemy import select

    from infra.db.models import JobEvent

    counts: dict[tuple[str, int], int] = {}
    with sessions() as session:
        stmt = select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.type == "epoch")
        for data in session.scalars(stmt):
            key = (str(data["trial_key"]), int(data["epoch"]))
            counts[key] = counts.get(key, 0) + 1
    return counts


def status_history(sessions: Any, job_id: str) -> list[str]:
    """The job's statuses in the order its status events were written."""
    from sqlalchemy import select

    from infra.db.models import JobEvent

    with sessions() as session:
        stmt = (
            select(JobEvent.data)
            .where(JobEvent.job_id == job_id, JobEvent.type == "status")
            .order_by(JobEvent.id)
        )
        return [str(d["status"]) for d in session.scalars(stmt)]


def wait_final(sessions: Any, job_id: str, timeout: float, log: Callable[[], str]) -> str:
    final = ("succeeded", "failed", "cancelled")
    return str(
        wait_for(
            lambda: (s := job_of(sessions, job_id).status) in final and s,
            timeout,
            lambda: (
                f"job {job_id} to finish (now {job_of(sessions, job_id).status}); "
                f"worker log:\n{log()[-4000:]}"
            ),
            poll=0.5,
        )
    )
