"""Fault: the broker (a private Redis without persistence) is killed and restarted empty while
one job runs and another waits in the queue; a third job is submitted while it is down.

PostgreSQL is the source of truth: the running job finishes, and the housekeeper sends the lost
and the never-sent messages again (deciding from the database alone), so every job ends
``succeeded``. Duplicate deliveries are harmless: two deliveries of one job at once run it once.
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


def queue_depth(settings: Any) -> int | None:
    from infra.broker import TaskProducer

    producer = TaskProducer(settings)
    try:
        return producer.queue_depth()
    finally:
        producer.close()


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
    assert send(settings, "synib.run_job", waiting) is not None
    assert queue_depth(settings) == 1  # concurrency 1: it waits
    wait_for(
        lambda: len(epochs_by_trial(sandbox.sessions, running).get("vanilla|seed=0", [])) >= 2,
        120,
        lambda: f"epochs of the running job; log:\n{worker.log()[-3000:]}",
    )

    private_redis.kill()  # the fault: every message in the broker is gone
    late = create_job(sandbox.sessions, sandbox.owner_id, tiny_spec(["vanilla"], SHORT_EPOCHS))
    assert send(settings, "synib.run_job", late) is None  # the API's send fails: job stays queued
    private_redis.start()  # empty: the waiting job's message is gone
    assert queue_depth(settings) == 0
    housekeeper = sandbox.housekeeper(env)

    for job_id in (running, waiting, late):
        logs = lambda: worker.log() + housekeeper.log()  # noqa: E731
        assert wait_final(sandbox.sessions, job_id, 240, logs) == "succeeded", job_id
        epochs = epochs_by_trial(sandbox.sessions, job_id)
        assert len(epochs) == 1
        (got,) = epochs.values()
        expected = LONG_EPOCHS if job_id == running else SHORT_EPOCHS
        assert got == list(range(1, expected + 1)), (job_id, got)
    # The running job was never interrupted; the other two were sent again by the housekeeper,
    # and each ran once.
    for job_id in (running, waiting, late):
        assert status_history(sandbox.sessions, job_id) == ["queued", "running", "succeeded"]
    log = housekeeper.log()
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
    from infra.db.session import session_factory
    from worker import job_runner

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
