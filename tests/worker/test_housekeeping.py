"""The housekeeping pass (worker/housekeeping.py) on a real database and broker: what it resumes,
cancels, resends (with backoff, from the database alone) and leaves alone; heartbeats trusted
only after the database has been reachable without a gap for a whole staleness period; and the
real ``synib housekeeper`` process (Celery beat + a solo worker) taking back the job of a dead
worker from a running one's."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from broker_testing import drain_tasks
from db_testing import redis_url
from processes import children_of
from sqlalchemy import update
from sqlalchemy.orm import Session

from infra.broker import TaskProducer
from infra.db import crud
from infra.db.models import Dataset, Job, utcnow
from infra.db.session import session_factory
from infra.settings import Settings
from worker.heartbeat import JobHeartbeat
from worker.housekeeping import Housekeeper, resend_due

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 11  # the test Redis (SYNIB_TEST_REDIS_URL), a database of these tests' own


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _set(session: Session, job_id: str, **columns: Any) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(**columns))
    session.commit()


def _owner_and_dataset(session: Session) -> tuple[str, str]:
    owner = crud.create_user(session, name=f"hk-{secrets.token_hex(3)}")
    dataset = crud.create_dataset(
        session, owner_id=owner.id, name="d", source="upload", params={}, status="ready"
    )
    return owner.id, dataset.id


def _job(session: Session, owner: str, dataset: str, status: str = "queued") -> str:
    job = crud.create_job(
        session, owner_id=owner, dataset_id=dataset, name=status, spec={}, trials_total=1
    )
    if status != "queued":
        assert crud.claim_job(session, job_id=job.id, worker="gone/1") is not None
    if status == "cancelling":
        crud.request_cancel(session, job_id=job.id)
    return job.id


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what()}")
        time.sleep(0.25)


def _statuses(session: Session, *job_ids: str) -> list[str]:
    session.expire_all()
    return [crud.get_job(session, job_id=j).status for j in job_ids]  # type: ignore[union-attr]


@pytest.fixture
def hk_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={
            "heartbeat_stale_s": 60.0,
            "requeue_queued_after_s": 30.0,
            "reconcile_interval_s": 10.0,
        }
    )


def test_resend_backoff_doubles_and_is_capped() -> None:
    now = utcnow()

    def due(waited_s: float, sends: int, since_send_s: float | None) -> bool:
        last = None if since_send_s is None else now - timedelta(seconds=since_send_s)
        state = crud.SendState("j", now - timedelta(seconds=waited_s), last, sends)
        return resend_due(state, now=now, first_after_s=30)

    assert not due(29, 0, None) and due(30, 0, None)  # 30 s after it was queued (and sent)
    assert not due(999, 1, 59) and due(999, 1, 60)  # after one resend: twice as long
    assert not due(999, 3, 239) and due(999, 3, 240)  # 30 s x 2 x 2 x 2
    assert not due(9999, 40, 30 * 32 - 1) and due(9999, 40, 30 * 32)  # capped at 32 x


def test_a_pass_resumes_cancels_resends_and_leaves_the_rest_alone(
    db_session: Session, hk_settings: Settings
) -> None:
    owner, dataset = _owner_and_dataset(db_session)
    now = utcnow()
    dead, alive = (_job(db_session, owner, dataset, "running") for _ in range(2))
    stopping = _job(db_session, owner, dataset, "cancelling")
    for job_id in (dead, stopping):
        _set(db_session, job_id, heartbeat_at=now - timedelta(minutes=5))
    trial = crud.upsert_trial(
        db_session, job_id=dead, trial_key="vanilla|seed=0", method="vanilla", seed=0, config={}
    )
    crud.set_trial_status(db_session, trial_id=trial.id, status="running")
    unsent, fresh, sent_once, backing_off = (_job(db_session, owner, dataset) for _ in range(4))
    _set(db_session, unsent, updated_at=now - timedelta(minutes=5))  # the API's send failed
    for job_id, sends, ago_s in ((sent_once, 1, 70), (backing_off, 3, 200)):
        _set(db_session, job_id, send_count=sends, last_sent_at=now - timedelta(seconds=ago_s))
    pending = crud.create_dataset(
        db_session, owner_id=owner, name="b", source="builtin", status="pending", params={}
    )
    db_session.execute(
        update(Dataset)
        .where(Dataset.id == pending.id)
        .values(created_at=now - timedelta(minutes=5))
    )
    db_session.commit()
    # PID requests: one whose message was lost 5 minutes ago, one just sent, one a worker took
    lost_pid, fresh_pid, taken_pid = (
        crud.create_dataset(
            db_session, owner_id=owner, name=n, source="upload", status="ready", params={}
        ).id
        for n in ("p1", "p2", "p3")
    )
    for dataset_id, status, ago in (
        (lost_pid, "queued", 300),
        (fresh_pid, "queued", 5),
        (taken_pid, "running", 300),
    ):
        requested = (now - timedelta(seconds=ago)).isoformat()
        crud.set_dataset_pid(
            db_session, dataset_id=dataset_id, pid={"status": status, "requested_at": requested}
        )
    clock = Clock()
    keeper = Housekeeper(
        hk_settings, sessions=session_factory(hk_settings.database_url), clock=clock
    )
    try:
        # Just started: the database has not been seen up for a staleness period yet, so no
        # heartbeat is judged; lost messages are resent all the same.
        first = keeper.run_once()
        assert (first.resumed, first.cancelled) == ([], [])
        assert first.resent == [unsent, sent_once] and first.datasets_resent == [pending.id]
        assert first.pids_resent == [lost_pid]
        assert sorted(drain_tasks(hk_settings)) == sorted(
            [("synib.run_job", unsent), ("synib.run_job", sent_once),
             ("synib.make_dataset", pending.id), ("synib.dataset_pid", lost_pid)]
        )  # fmt: skip
        lost = crud.get_dataset(db_session, dataset_id=lost_pid)
        db_session.refresh(lost)
        assert lost.pid["send_count"] == 1 and lost.pid["status"] == "queued"
        for _ in range(5):  # a pass every 10 s: 50 s of reachability, under the 60 s period
            clock.now += 10
            assert not keeper.run_once()  # nothing judged, nothing due again yet
        clock.now += 10
        second = keeper.run_once()
    finally:
        keeper.close()
    assert second.resumed == [dead] and second.cancelled == [stopping]
    assert second.resent == [dead]  # sent at once; the others were sent moments ago
    assert drain_tasks(hk_settings) == [("synib.run_job", dead)]
    assert _statuses(db_session, dead, alive, stopping, fresh, backing_off) == [
        "queued",
        "running",
        "cancelled",
        "queued",
        "queued",
    ]
    assert crud.list_trials(db_session, job_id=dead)[0].status == "pending"
    sends = {s.id: s.send_count for s in crud.list_queued_job_sends(db_session)}
    assert sends == {dead: 1, unsent: 1, fresh: 0, sent_once: 2, backing_off: 3}


def test_heartbeats_are_judged_only_after_a_gapless_staleness_period(
    db_session: Session, hk_settings: Settings
) -> None:
    owner, dataset = _owner_and_dataset(db_session)
    dead = _job(db_session, owner, dataset, "running")
    _set(db_session, dead, heartbeat_at=utcnow() - timedelta(minutes=5))
    clock = Clock()
    keeper = Housekeeper(
        hk_settings, sessions=session_factory(hk_settings.database_url), clock=clock
    )
    try:
        assert keeper.run_once().resumed == []  # t = 0: the database just came into view
        clock.now += 15
        assert keeper.run_once().resumed == []
        clock.now += 50  # a gap longer than 2 intervals: an outage may have gone unseen
        assert keeper.run_once().resumed == []
        for _ in range(5):  # 50 s of passes 10 s apart: still under the 60 s period
            clock.now += 10
            assert keeper.run_once().resumed == []
        clock.now += 10
        assert keeper.run_once().resumed == [dead]
    finally:
        keeper.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_housekeeper_process_takes_back_only_the_dead_workers_job(
    pg_database_url: str, tmp_path: Path
) -> None:
    """``synib housekeeper`` against PostgreSQL and Redis: a job whose worker stopped beating
    goes back to the queue with its message; a job whose worker beats stays running."""
    import redis

    broker = redis_url(REDIS_DB)
    redis.Redis.from_url(broker).flushdb()
    settings = Settings(
        state_dir=tmp_path / "state", database_url=pg_database_url, broker_url=broker
    )
    sessions = session_factory(pg_database_url)
    with sessions() as session:
        owner, dataset = _owner_and_dataset(session)
        dead, alive = _job(session, owner, dataset, "running"), _job(session, owner, dataset)
        assert crud.claim_job(session, job_id=alive, worker="alive/1") is not None
        _set(session, dead, heartbeat_at=utcnow() - timedelta(minutes=5))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SYNIB_")},
        "SYNIB_STATE_DIR": str(settings.state_dir),
        "SYNIB_DATABASE_URL": pg_database_url,
        "SYNIB_BROKER_URL": broker,
        "SYNIB_HEARTBEAT_STALE_S": "4",
        "SYNIB_RECONCILE_INTERVAL_S": "1",
        "SYNIB_REQUEUE_QUEUED_AFTER_S": "600",
        "PYTHONPATH": str(REPO),
    }
    log = tmp_path / "housekeeper.log"
    command = [sys.executable, "-m", "worker.cli", "housekeeper", "--log-level", "info"]
    with log.open("wb") as out, JobHeartbeat(sessions, alive, "alive/1", interval_s=0.5):
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
        try:
            wait_for(
                lambda: _statuses_of(sessions, dead) == ["queued"],
                60,
                lambda: f"the dead worker's job to be requeued; log:\n{log.read_text()[-3000:]}",
            )
            assert _statuses_of(sessions, alive) == ["running"]
            producer = TaskProducer(settings)
            try:
                wait_for(lambda: producer.queue_depth() == 1, 30, lambda: "the job's message")
            finally:
                producer.close()
        finally:
            pids = [process.pid, *children_of(process.pid)]
            process.terminate()
            process.wait(timeout=30)
    left = lambda: [p for p in pids if Path(f"/proc/{p}").exists()]  # noqa: E731
    wait_for(lambda: not left(), 30, lambda: f"its beat process to end too: {left()}")
    assert drain_tasks(settings) == [("synib.run_job", dead)]
    text = log.read_text()
    assert f"job {dead} lost its worker; resuming it" in text
    assert "beat: Starting" in text and alive not in text


def _statuses_of(sessions: Any, *job_ids: str) -> list[str]:
    with sessions() as session:
        return _statuses(session, *job_ids)
