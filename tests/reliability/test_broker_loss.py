"""Fault: the broker (a private Redis without persistence) is killed and restarted empty while
one job runs and another waits in the queue; a third job is submitted while it is down.

PostgreSQL is the source of truth: the running job finishes, and the worker's reconciler sends
the lost and the never-sent messages again, so every job ends ``succeeded``. Duplicate
deliveries are harmless: two deliveries of one job at once run it once.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from reliability_harness import (
    RedisServer,
    Sandbox,
    wait_for,
    worker_env,
)
from reliability_jobs import (
    create_job,
    epochs_by_trial,
    job_of,
    send,
    status_history,
    tiny_spec,
    wait_final,
)

from infra.db import crud

LONG_EPOCHS = 30
SHORT_EPOCHS = 3


def queued_task_ids(redis_url: str) -> list[str]:
    """Celery task ids of the ``synib.run_job`` messages waiting in queue ``synib``."""
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        headers = [json.loads(raw)["headers"] for raw in client.lrange("synib", 0, -1)]
        return [h["id"] for h in headers if h["task"] == "synib.run_job"]
    finally:
        client.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_broker_restart_with_data_loss_loses_no_job(
    sandbox: Sandbox, private_redis: RedisServer
) -> None:
    from infra.settings import Settings

    settings = Settings(
        state_dir=sandbox.state_dir, database_url=sandbox.database_url, broker_url=private_redis.url
    )
    env = worker_env(
        state_dir=sandbox.state_dir,
        database_url=sandbox.database_url,
        broker_url=private_redis.url,
        ray_tmp=sandbox.ray_tmp,
    )
    worker = sandbox.worker(env, "worker")
    running = create_job(sandbox.sessions, sandbox.owner_id, tiny_spec(["vanilla"], LONG_EPOCHS))
    assert send(settings, "synib.run_job", running) is not None
    wait_for(lambda: job_of(sandbox.sessions, running).status == "running", 120, "job to start")
    waiting = create_job(sandbox.sessions, sandbox.owner_id, tiny_spec(["vanilla"], SHORT_EPOCHS))
    waiting_task = send(settings, "synib.run_job", waiting)
    assert waiting_task is not None
    assert queued_task_ids(private_redis.url) == [waiting_task]  # concurrency 1: it waits
    wait_for(
        lambda: len(epochs_by_trial(sandbox.sessions, running).get("vanilla|seed=0", [])) >= 2,
        120,
        lambda: f"epochs of the running job; log:\n{worker.log()[-3000:]}",
    )

    private_redis.kill()  # the fault: every message in the broker is gone
    late = create_job(sandbox.sessions, sandbox.owner_id, tiny_spec(["vanilla"], SHORT_EPOCHS))
    assert send(settings, "synib.run_job", late) is None  # the API's send fails: job stays queued
    private_redis.start()  # empty: the waiting job's message is gone
    assert waiting_task not in queued_task_ids(private_redis.url)

    for job_id in (running, waiting, late):
        assert wait_final(sandbox.sessions, job_id, 240, worker.log) == "succeeded", job_id
        epochs = epochs_by_trial(sandbox.sessions, job_id)
        assert len(epochs) == 1
        (got,) = epochs.values()
        expected = LONG_EPOCHS if job_id == running else SHORT_EPOCHS
        assert got == list(range(1, expected + 1)), (job_id, got)
    # The running job was never interrupted; the other two were sent again by the reconciler.
    assert status_history(sandbox.sessions, running) == ["queued", "running", "succeeded"]
    log = worker.log()
    assert f"sent synib.run_job({waiting}) again" in log
    assert f"sent synib.run_job({late}) again" in log
    assert f"sent synib.run_job({running}) again" not in log


def _fake_execute(calls: list[str], started: threading.Event, release: threading.Event) -> Any:
    from worker import job_runner

    def execute(ctx: Any) -> str:
        calls.append(ctx.worker)
        started.set()
        release.wait(10)
        return job_runner.finish(ctx, "succeeded")

    return execute


def test_two_deliveries_at_once_run_the_job_once(
    db_session: Any, api_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both deliveries race for the claim at the same moment; exactly one runs the job."""
    from worker import job_runner
    from worker.db_ops import session_factory

    owner = crud.create_user(db_session, name="dup")
    dataset = crud.create_dataset(
        db_session, owner_id=owner.id, name="d", source="upload", params={}, status="ready"
    )
    job = crud.create_job(
        db_session, owner_id=owner.id, dataset_id=dataset.id, name="j", spec={}, trials_total=1
    )
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(job_runner, "execute", _fake_execute(calls, started, release))
    sessions = session_factory(api_settings.database_url)
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def deliver(name: str) -> None:
        barrier.wait()
        results[name] = job_runner.run_job(
            job.id, settings=api_settings, sessions=sessions, worker=name, task_id=None
        )

    threads = [threading.Thread(target=deliver, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    assert started.wait(20)
    release.set()
    for t in threads:
        t.join(30)
    assert sorted(results.values()) == ["skipped", "succeeded"], results
    assert len(calls) == 1
    winner = next(name for name, status in results.items() if status == "succeeded")
    assert calls == [winner]
    db_session.expire_all()
    final = crud.get_job(db_session, job_id=job.id)
    assert final is not None and (final.status, final.worker) == ("succeeded", winner)
    assert status_history(sessions, job.id) == ["queued", "running", "succeeded"]


def _age(session: Any, job_id: str, **columns: Any) -> None:
    from sqlalchemy import update

    from infra.db.models import Job

    session.execute(update(Job).where(Job.id == job_id).values(**columns))
    session.commit()


def test_reconciler_resumes_dead_jobs_and_resends_only_missing_messages(
    db_session: Any, api_settings: Any
) -> None:
    """One pass on a filesystem broker: what it resumes, resends, cancels and leaves alone."""
    from datetime import timedelta

    from infra.broker import TaskProducer
    from infra.db.models import utcnow
    from worker.db_ops import session_factory
    from worker.reconciler import Reconciler, waiting_tasks

    settings = api_settings.model_copy(
        update={"heartbeat_stale_s": 60.0, "requeue_queued_after_s": 30.0}
    )
    owner = crud.create_user(db_session, name="rec")
    dataset = crud.create_dataset(
        db_session, owner_id=owner.id, name="d", source="upload", params={}, status="ready"
    )

    def job(status: str, beat_age_s: float, age_s: float = 3600) -> str:
        row = crud.create_job(
            db_session,
            owner_id=owner.id,
            dataset_id=dataset.id,
            name=status,
            spec={},
            trials_total=1,
        )
        if status != "queued":
            assert crud.claim_job(db_session, job_id=row.id, worker="gone/1") is not None
        if status == "cancelling":
            crud.request_cancel(db_session, job_id=row.id)
        now = utcnow()
        _age(
            db_session,
            row.id,
            heartbeat_at=now - timedelta(seconds=beat_age_s),
            updated_at=now - timedelta(seconds=age_s),
            created_at=now - timedelta(seconds=age_s),
        )
        return row.id

    dead, alive = job("running", 3600), job("running", 5)
    stopping = job("cancelling", 3600)
    lost, fresh, present = job("queued", 0), job("queued", 0, age_s=5), job("queued", 0)
    trial = crud.upsert_trial(
        db_session, job_id=dead, trial_key="vanilla|seed=0", method="vanilla", seed=0, config={}
    )
    crud.set_trial_status(db_session, trial_id=trial.id, status="running")
    TaskProducer(settings).send("synib.run_job", present)
    sessions = session_factory(settings.database_url)

    # A looping reconciler that just saw the database come up trusts no heartbeat yet.
    cautious = Reconciler(settings, sessions=sessions).run_once()
    assert (cautious.resumed, cautious.cancelled, cautious.resent) == ([], [], [lost])

    result = Reconciler(settings, sessions=sessions, assume_db_continuity=True).run_once()
    assert result.resumed == [dead] and result.cancelled == [stopping]
    assert result.resent == [dead]  # ``lost`` has its message now, ``present`` had one
    waiting = {job_id for task, job_id in waiting_tasks(settings) or set()}
    assert waiting == {dead, lost, present}
    db_session.expire_all()
    status = {j: crud.get_job(db_session, job_id=j).status for j in (dead, alive, stopping, fresh)}  # type: ignore[union-attr]
    assert status == {dead: "queued", alive: "running", stopping: "cancelled", fresh: "queued"}
    assert crud.list_trials(db_session, job_id=dead)[0].status == "pending"
    again = Reconciler(settings, sessions=sessions, assume_db_continuity=True).run_once()
    assert not again, again
