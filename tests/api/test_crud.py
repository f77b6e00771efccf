"""The crud functions the worker uses: claim guard, events on every change, idempotent upserts."""

from __future__ import annotations

import threading

from api_factories import add_job
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from infra.db import crud
from infra.db.models import Dataset, EpochMetric, JobEvent


def _event_types(session: Session, job_id: str) -> list[str]:
    return [e.type for e in crud.list_events(session, job_id=job_id)]


def test_claim_job_only_once(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id)
    claimed = crud.claim_job(db_session, job_id=job.id, worker="w1")
    assert claimed is not None and claimed.status == "running" and claimed.worker == "w1"
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    assert crud.claim_job(db_session, job_id=job.id, worker="w2") is None
    assert crud.claim_job(db_session, job_id="missing", worker="w2") is None
    assert _event_types(db_session, job.id) == ["status", "status"]


def test_concurrent_claims_have_one_winner(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id)
    factory = sessionmaker(bind=db_session.get_bind(), expire_on_commit=False)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        with factory() as session:
            barrier.wait()
            results.append(crud.claim_job(session, job_id=job.id, worker=name) is not None)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_status_guard_and_times(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    assert (
        crud.set_job_status(
            db_session, job_id=job.id, status="succeeded", only_from=("cancelling",)
        )
        is None
    )
    done = crud.set_job_status(db_session, job_id=job.id, status="failed", failure_reason="boom")
    assert done is not None and done.finished_at is not None and done.failure_reason == "boom"
    events = crud.list_events(db_session, job_id=job.id)
    assert events[-1].data["status"] == "failed" and events[-1].data["failure_reason"] == "boom"


def test_epoch_upsert_never_duplicates(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    trial = crud.upsert_trial(
        db_session, job_id=job.id, trial_key="synib|seed=0", method="synib", seed=0, config={}
    )
    again = crud.upsert_trial(
        db_session, job_id=job.id, trial_key="synib|seed=0", method="synib", seed=0, config={}
    )
    assert again.id == trial.id
    crud.upsert_epoch_metrics(db_session, trial_id=trial.id, epoch=1, metrics={"val_acc": 0.1})
    crud.upsert_epoch_metrics(db_session, trial_id=trial.id, epoch=2, metrics={"val_acc": 0.2})
    crud.upsert_epoch_metrics(db_session, trial_id=trial.id, epoch=2, metrics={"val_acc": 0.3})
    rows = crud.list_epoch_metrics(db_session, trial_id=trial.id)
    assert [(r.epoch, r.metrics["val_acc"]) for r in rows] == [(1, 0.1), (2, 0.3)]
    count = db_session.scalar(select(func.count()).select_from(EpochMetric))
    assert count == 2
    db_session.refresh(trial)
    assert trial.epochs_done == 2
    assert _event_types(db_session, job.id).count("epoch") == 3
    assert _event_types(db_session, job.id).count("trial") == 1


def test_references_are_stored(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    crud.set_job_references(db_session, job_id=job.id, references={"0": {"a": {"test_acc": 0.7}}})
    db_session.expire_all()
    row = crud.get_job(db_session, job_id=job.id)
    assert row is not None and row.references == {"0": {"a": {"test_acc": 0.7}}}


def test_dataset_ready_and_failed(db_session: Session, user_token: tuple[str, str]) -> None:
    row = crud.create_dataset(
        db_session,
        owner_id=user_token[1],
        name="x",
        source="builtin",
        builtin_name="xor_pid",
        params={"seed": 1},
        status="pending",
    )
    crud.mark_dataset_ready(
        db_session,
        dataset_id=row.id,
        path=f"datasets/{row.id}.npz",
        sha256="a" * 64,
        size_bytes=10,
        summary={"num_classes": 2},
    )
    db_session.expire_all()
    ready = crud.get_dataset(db_session, dataset_id=row.id)
    assert ready is not None and ready.status == "ready" and ready.size_bytes == 10
    crud.mark_dataset_failed(db_session, dataset_id=row.id, error="generator crashed")
    db_session.expire_all()
    failed = crud.get_dataset(db_session, dataset_id=row.id)
    assert failed is not None and failed.status == "failed" and failed.error == "generator crashed"


def test_deleting_a_job_cascades(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="succeeded")
    trial = crud.upsert_trial(
        db_session, job_id=job.id, trial_key="k", method="vanilla", seed=0, config={}
    )
    crud.upsert_epoch_metrics(db_session, trial_id=trial.id, epoch=1, metrics={})
    crud.delete_job(db_session, job_id=job.id)
    assert db_session.scalar(select(func.count()).select_from(JobEvent)) == 0
    assert db_session.scalar(select(func.count()).select_from(EpochMetric)) == 0
