"""A job's lease and what the housekeeping reads and writes: fenced heartbeats, expired leases
taken back (requeue, cancel) only while still expired, and the send bookkeeping a resend is
decided from. On PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api_factories import add_job
from sqlalchemy import update
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset, Job, utcnow


def _set(session: Session, job_id: str, **columns: Any) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(**columns))
    session.commit()


def _status(session: Session, job_id: str) -> str:
    session.expire_all()
    job = crud.get_job(session, job_id=job_id)
    assert job is not None
    return job.status


def test_heartbeat_is_fenced_by_the_lease(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")  # held by w1
    old = utcnow() - timedelta(hours=1)
    _set(db_session, job.id, heartbeat_at=old)
    assert crud.beat_job(db_session, job_id=job.id, worker="w1")
    assert crud.owns_job(db_session, job_id=job.id, worker="w1")
    db_session.expire_all()
    renewed = crud.get_job(db_session, job_id=job.id)
    assert renewed is not None and renewed.heartbeat_at is not None and renewed.heartbeat_at > old
    # Another worker's beat touches nothing, and it does not own the job.
    assert not crud.beat_job(db_session, job_id=job.id, worker="w2")
    assert not crud.owns_job(db_session, job_id=job.id, worker="w2")
    assert crud.job_status_and_worker(db_session, job_id=job.id) == ("running", "w1")
    assert crud.job_status_and_worker(db_session, job_id="missing") == (None, None)
    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    assert not crud.beat_job(db_session, job_id=job.id, worker="w1")  # a finished job: no lease
    assert not crud.owns_job(db_session, job_id=job.id, worker="w1")


def test_expired_leases_are_requeued_or_cancelled_only_while_expired(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    owner = user_token[1]
    dead, alive = (add_job(db_session, owner, dataset.id, status="running") for _ in range(2))
    stopping = add_job(db_session, owner, dataset.id, status="running")
    crud.request_cancel(db_session, job_id=stopping.id)
    queued = add_job(db_session, owner, dataset.id)
    now = utcnow()
    for job_id in (dead.id, stopping.id):
        _set(db_session, job_id, heartbeat_at=now - timedelta(minutes=10))
    trials = {
        key: crud.upsert_trial(
            db_session, job_id=dead.id, trial_key=key, method="vanilla", seed=0, config={}
        )
        for key in ("a", "b", "c")
    }
    crud.set_trial_status(db_session, trial_id=trials["a"].id, status="running")
    crud.set_trial_status(db_session, trial_id=trials["b"].id, status="succeeded")
    stale_before = now - timedelta(minutes=1)

    expired = crud.list_expired_leases(db_session, stale_before=stale_before)
    assert sorted(expired) == sorted([(dead.id, "running"), (stopping.id, "cancelling")])
    # A lease renewed after the listing is not taken back.
    _set(db_session, dead.id, heartbeat_at=utcnow())
    assert not crud.requeue_expired_lease(db_session, job_id=dead.id, stale_before=stale_before)
    assert _status(db_session, dead.id) == "running"
    _set(db_session, dead.id, heartbeat_at=now - timedelta(minutes=10))
    assert crud.requeue_expired_lease(db_session, job_id=dead.id, stale_before=stale_before)
    assert not crud.requeue_expired_lease(db_session, job_id=alive.id, stale_before=stale_before)
    assert not crud.requeue_expired_lease(db_session, job_id=queued.id, stale_before=stale_before)
    assert crud.cancel_expired_lease(db_session, job_id=stopping.id, stale_before=stale_before)
    assert not crud.cancel_expired_lease(db_session, job_id=dead.id, stale_before=stale_before)

    assert [_status(db_session, j.id) for j in (dead, alive, stopping, queued)] == [
        "queued",
        "running",
        "cancelled",
        "queued",
    ]
    by_key = {t.trial_key: t.status for t in crud.list_trials(db_session, job_id=dead.id)}
    assert by_key == {"a": "pending", "b": "succeeded", "c": "pending"}
    statuses = [e.data["status"] for e in crud.list_events(db_session, job_id=dead.id)]
    assert [s for s in statuses if s is not None][-1] == "queued"
    assert crud.list_expired_leases(db_session, stale_before=stale_before) == []


def test_sends_are_recorded_and_restart_when_a_job_is_queued_again(
    db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    job = add_job(db_session, user_token[1], dataset.id)
    [state] = crud.list_queued_job_sends(db_session)
    assert (state.id, state.last_sent_at, state.send_count) == (job.id, None, 0)
    updated_at = state.waiting_since
    for n, task_id in enumerate(("t1", "t2"), start=1):
        crud.mark_job_sent(db_session, job_id=job.id, task_id=task_id)
        [state] = crud.list_queued_job_sends(db_session)
        assert state.send_count == n and state.last_sent_at is not None
    assert state.waiting_since == updated_at  # a send is no change of the job
    db_session.expire_all()
    assert crud.get_job(db_session, job_id=job.id).task_id == "t2"  # type: ignore[union-attr]

    assert crud.claim_job(db_session, job_id=job.id, worker="w1") is not None
    assert crud.list_queued_job_sends(db_session) == []  # running: nothing to resend
    _set(db_session, job.id, heartbeat_at=utcnow() - timedelta(hours=1))
    assert crud.requeue_expired_lease(db_session, job_id=job.id, stale_before=utcnow())
    [state] = crud.list_queued_job_sends(db_session)
    assert (state.last_sent_at, state.send_count) == (None, 0)  # its backoff starts over


def test_pending_builtin_datasets_to_send_exclude_those_an_active_job_uses(
    db_session: Session, user_token: tuple[str, str]
) -> None:
    owner = user_token[1]

    def dataset(source: str = "builtin", status: str = "pending") -> str:
        row = crud.create_dataset(
            db_session, owner_id=owner, name="d", source=source, status=status, params={}
        )
        return row.id

    lone, used, done = dataset(), dataset(), dataset()
    dataset(status="ready")
    dataset(source="upload")
    add_job(db_session, owner, used)  # run_job generates its job's dataset itself
    add_job(db_session, owner, done, status="succeeded")
    sends = crud.list_pending_dataset_sends(db_session)
    assert [s.id for s in sends] == [lone, done]
    assert all(s.last_sent_at is None and s.send_count == 0 for s in sends)
    crud.mark_dataset_sent(db_session, dataset_id=lone)
    first = crud.list_pending_dataset_sends(db_session)[0]
    assert first.id == lone and first.send_count == 1 and first.last_sent_at is not None
