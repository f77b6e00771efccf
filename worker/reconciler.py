"""The reconciler: the database is the source of truth, the broker only a hint.

One pass (``Reconciler.run_once``) does, in order:
1. (nothing: a worker's local Ray ends with the worker process);
2. ``running`` jobs whose heartbeat is older than ``settings.heartbeat_stale_s`` (their worker
   died): back to ``queued`` (their open trials back to ``pending``) and sent again; the next
   run resumes every unfinished trial from its checkpoint;
3. ``cancelling`` jobs whose heartbeat is stale: ``cancelled`` (nobody is left to stop them);
4. ``queued`` jobs older than ``settings.requeue_queued_after_s`` whose ``synib.run_job``
   message is not waiting in the broker (lost with a broker restart, or never sent because
   the broker was down): sent again; the same for ``pending`` built-in datasets.
A duplicate message is harmless: ``run_job`` claims a job with an atomic, row-locked
``queued -> running`` update, so only one delivery runs it.

Every worker runs a pass every ``settings.reconcile_interval_s`` in a daemon thread of its main
process (``start_background``); ``synib reconcile`` runs one pass. A heartbeat is only judged
stale once this reconciler has reached the database continuously for ``heartbeat_stale_s``, so
a database outage (during which no heartbeat can be written) never makes live jobs look dead.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from infra.broker import MAKE_DATASET, QUEUE, RUN_JOB, TaskProducer, filesystem_folders
from infra.db import crud
from infra.db.models import Dataset, Job, Trial, utcnow
from infra.db.session import make_engine, make_session_factory
from infra.settings import Settings
from worker.db_retry import is_connection_error

log = logging.getLogger(__name__)

REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITIES = (3, 6, 9)  # kombu's extra priority lists besides the plain queue
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's reserved-message bookkeeping


@dataclass
class ReconcileResult:
    """What one pass did (job and dataset ids)."""

    resumed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    datasets_resent: list[str] = field(default_factory=list)
    reaped: int = 0

    def __bool__(self) -> bool:
        return bool(
            self.resumed or self.resent or self.cancelled or self.datasets_resent or self.reaped
        )


def task_of(raw: bytes | str | dict[str, Any]) -> tuple[str, str] | None:
    """(task name, first argument) of a kombu message as stored by Redis / the filesystem."""
    try:
        message = raw if isinstance(raw, dict) else json.loads(raw)
        name = str(message["headers"]["task"])
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return name, str(args[0])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def waiting_tasks(settings: Settings) -> set[tuple[str, str]] | None:
    """(task, object id) of every message waiting in queue ``synib``; None if unreadable."""
    try:
        if settings.uses_filesystem_broker:
            folder = filesystem_folders(settings.broker_dir)["data_folder_out"]
            files = folder.glob(f"*.{QUEUE}.msg") if folder.is_dir() else []
            raws: list[bytes | str] = [p.read_bytes() for p in files]
        else:
            import redis

            client = redis.Redis.from_url(
                settings.broker_url, socket_connect_timeout=2, socket_timeout=5
            )
            try:
                raws = _redis_messages(client, settings.requeue_queued_after_s)
            finally:
                client.close()
    except Exception as exc:
        log.warning("reconciler: cannot read the broker (%s: %s)", type(exc).__name__, exc)
        return None
    return {t for t in map(task_of, raws) if t is not None}


def _redis_messages(client: Any, reserved_within_s: float) -> list[Any]:
    """Messages waiting in the queue (all priorities), plus those a worker reserved within
    the last ``reserved_within_s`` seconds (kombu's ``unacked`` hash): a worker that took a
    message moments ago is about to claim the job. An older reservation whose job is still
    queued belongs to a worker that died before claiming it, and does not count."""
    keys = [QUEUE, *(f"{QUEUE}{REDIS_PRIORITY_SEP}{p}" for p in REDIS_PRIORITIES)]
    raws: list[Any] = [raw for key in keys for raw in client.lrange(key, 0, -1)]
    tags = client.zrangebyscore(UNACKED_INDEX, time.time() - reserved_within_s, "+inf")
    for entry in client.hmget(UNACKED, tags) if tags else []:
        try:
            raws.append(json.loads(entry)[0])  # [message, exchange, routing key]
        except (TypeError, ValueError, IndexError):
            continue
    return raws


def _lock(session: Session, model: Any, object_id: str) -> Any:
    stmt = (
        select(model)
        .where(model.id == object_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).first()


def requeue_if_stale(session: Session, *, job_id: str, stale_before: datetime) -> bool:
    """running -> queued (open trials -> pending) if the heartbeat is still stale; commits."""
    job = _lock(session, Job, job_id)
    beat = job.heartbeat_at if job is not None else None
    if job is None or job.status != "running" or (beat is not None and beat >= stale_before):
        session.rollback()
        return False
    crud.set_job_status(session, job_id=job_id, status="queued", only_from=("running",))
    stmt = select(Trial).where(Trial.job_id == job_id, Trial.status == "running")
    for trial in list(session.scalars(stmt)):
        crud.set_trial_status(session, trial_id=trial.id, status="pending")
    return True


def cancel_if_stale(session: Session, *, job_id: str, stale_before: datetime) -> bool:
    """cancelling -> cancelled (open trials cancelled) if the heartbeat is still stale."""
    job = _lock(session, Job, job_id)
    beat = job.heartbeat_at if job is not None else None
    if job is None or job.status != "cancelling" or (beat is not None and beat >= stale_before):
        session.rollback()
        return False
    crud.set_job_status(session, job_id=job_id, status="cancelled", only_from=("cancelling",))
    stmt = select(Trial).where(Trial.job_id == job_id, Trial.status.in_(("pending", "running")))
    for trial in list(session.scalars(stmt)):
        crud.set_trial_status(session, trial_id=trial.id, status="cancelled")
    return True


class Reconciler:
    """One reconciler per process; ``run_once`` is safe to run from several hosts at once."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: Callable[[], Session] | None = None,
        assume_db_continuity: bool = False,
    ) -> None:
        self.settings = settings
        self.sessions = sessions or _private_sessions(settings.database_url)
        # A one-shot pass (synib reconcile) trusts heartbeats at once; the loop waits until it
        # has seen the database up for a whole staleness period.
        self._db_up_since: float | None = float("-inf") if assume_db_continuity else None

    def run_once(self) -> ReconcileResult:
        """One pass (see the module docstring); database errors propagate."""
        result = ReconcileResult()
        try:
            self._jobs_pass(result)
        except Exception as exc:
            if is_connection_error(exc):
                self._db_up_since = None
            raise
        return result

    def _heartbeats_trustworthy(self) -> bool:
        now = time.monotonic()
        if self._db_up_since is None:
            self._db_up_since = now
        return now - self._db_up_since >= self.settings.heartbeat_stale_s

    def _jobs_pass(self, result: ReconcileResult) -> None:
        now = utcnow()
        stale_before = now - timedelta(seconds=self.settings.heartbeat_stale_s)
        queued_before = now - timedelta(seconds=self.settings.requeue_queued_after_s)
        with self.sessions() as session:
            candidates = crud.list_jobs_needing_resumption(session, stale_before=stale_before)
            queued = self._old_queued(session, queued_before)
            datasets = self._old_pending_datasets(session, queued_before)
        if self._heartbeats_trustworthy():
            for job in candidates:
                with self.sessions() as session:
                    if job.status == "running" and requeue_if_stale(
                        session, job_id=job.id, stale_before=stale_before
                    ):
                        log.warning("reconciler: job %s lost its worker; resuming it", job.id)
                        result.resumed.append(job.id)
                    elif job.status == "cancelling" and cancel_if_stale(
                        session, job_id=job.id, stale_before=stale_before
                    ):
                        result.cancelled.append(job.id)
        self._send_missing(result, [*result.resumed, *queued], datasets)

    @staticmethod
    def _old_queued(session: Session, before: datetime) -> list[str]:
        stmt = select(Job.id).where(Job.status == "queued", Job.updated_at < before)
        return list(session.scalars(stmt.order_by(Job.created_at)))

    @staticmethod
    def _old_pending_datasets(session: Session, before: datetime) -> list[str]:
        """Pending built-in datasets no active job will materialise (run_job does it itself)."""
        used = select(Job.dataset_id).where(Job.status.in_(("queued", "running")))
        stmt = select(Dataset.id).where(
            Dataset.status == "pending",
            Dataset.source == "builtin",
            Dataset.created_at < before,
            Dataset.id.not_in(used),
        )
        return list(session.scalars(stmt))

    def _send_missing(
        self, result: ReconcileResult, job_ids: list[str], dataset_ids: list[str]
    ) -> None:
        if not job_ids and not dataset_ids:
            return
        waiting = waiting_tasks(self.settings)
        if waiting is None:
            return  # broker down: the next pass tries again
        producer = TaskProducer(self.settings)
        try:
            for task, ids, sent in (
                (RUN_JOB, dict.fromkeys(job_ids), result.resent),
                (MAKE_DATASET, dict.fromkeys(dataset_ids), result.datasets_resent),
            ):
                for object_id in ids:
                    if (task, object_id) in waiting:
                        continue
                    if producer.send(task, object_id) is not None:
                        log.warning("reconciler: sent %s(%s) again", task, object_id)
                        sent.append(object_id)
        finally:
            producer.close()


def _private_sessions(database_url: str) -> sessionmaker[Session]:
    """Sessions without a connection pool: nothing for forked pool children to inherit."""
    return make_session_factory(make_engine(database_url, poolclass=NullPool))


class ReconcilerThread(threading.Thread):
    """Runs ``Reconciler.run_once`` every ``interval_s`` until ``stop()``; never raises."""

    def __init__(self, reconciler: Reconciler, interval_s: float) -> None:
        super().__init__(name="synib-reconciler", daemon=True)
        self.reconciler = reconciler
        self.interval_s = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                done = self.reconciler.run_once()
                if done:
                    log.info("reconciler: %s", done)
            except Exception as exc:
                level = logging.WARNING if is_connection_error(exc) else logging.ERROR
                log.log(level, "reconciler pass failed: %s: %s", type(exc).__name__, exc)
            self._stop_event.wait(self.interval_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)


def start_background(settings: Settings) -> ReconcilerThread | None:
    """Start the periodic reconciler (None when ``settings.reconcile_interval_s`` is 0)."""
    if settings.reconcile_interval_s <= 0:
        return None
    thread = ReconcilerThread(Reconciler(settings), settings.reconcile_interval_s)
    thread.start()
    return thread
