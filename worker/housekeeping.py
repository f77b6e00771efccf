"""The housekeeping pass: the database is the source of truth, the broker is never inspected.

One pass (``Housekeeper.run_once``) does, in order:
1. ``running`` jobs whose heartbeat is older than ``settings.heartbeat_stale_s`` (their worker
   died): back to ``queued`` (their running trials back to ``pending``) and sent again; the next
   run resumes every unfinished trial from its checkpoint;
2. ``cancelling`` jobs whose heartbeat is stale: ``cancelled`` (nobody is left to stop them);
3. ``queued`` jobs whose ``synib.run_job`` message may have been lost (a broker restart, or a
   send that failed while the broker was down): sent again ``requeue_queued_after_s`` after the
   job was queued (when its first message was sent), then after twice as long, and so on (at
   most ``MAX_BACKOFF`` times as long); the same for pending built-in datasets and
   ``synib.make_dataset``. A job waiting behind long ones gets a few duplicates, no more.
4. files in the artifact store's temporary folder not modified for ``temp_file_max_age_s``
   (left by an upload or a write whose process crashed) are deleted; this step needs no
   database, and a storage error only skips it.
A duplicate message is harmless: ``run_job`` claims a job with an atomic, row-locked
``queued -> running`` update, so only one delivery runs it (``make_dataset`` likewise).

The housekeeper process (``worker.housekeeper``) runs a pass every ``reconcile_interval_s``;
``synib reconcile`` runs one by hand. A heartbeat is only judged stale once this housekeeper has
reached the database without a gap for ``heartbeat_stale_s``: during a database outage no
heartbeat can be written, and live jobs must not look dead afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from infra.broker import DATASET_PID, MAKE_DATASET, RUN_JOB, TaskProducer
from infra.db import crud
from infra.db.models import JobStatus, utcnow
from infra.db.session import SessionFactory, make_engine, make_session_factory
from infra.object_store import open_store
from infra.settings import Settings
from infra.storage import StorageError
from worker.db_retry import is_connection_error

log = logging.getLogger(__name__)

MAX_BACKOFF = 32  # the longest wait between resends: 32 x requeue_queued_after_s


@dataclass
class HousekeepingResult:
    """What one pass did (job and dataset ids)."""

    resumed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    datasets_resent: list[str] = field(default_factory=list)
    pids_resent: list[str] = field(default_factory=list)
    temp_files_removed: list[str] = field(default_factory=list)  # file names in .tmp

    def __bool__(self) -> bool:
        return bool(
            self.resumed
            or self.cancelled
            or self.resent
            or self.datasets_resent
            or self.pids_resent
            or self.temp_files_removed
        )


def resend_due(state: crud.SendState, *, now: datetime, first_after_s: float) -> bool:
    """Whether the message should go out again now: ``first_after_s`` after the wait began
    (the first send), then twice as long after each resend, at most ``MAX_BACKOFF`` times."""
    if state.last_sent_at is None:
        return now - state.waiting_since >= timedelta(seconds=first_after_s)
    factor = min(2**state.send_count, MAX_BACKOFF)
    return now - state.last_sent_at >= timedelta(seconds=first_after_s * factor)


class Housekeeper:
    """One per process (its memory: since when the database has been reachable); ``run_once``
    is safe to run from several hosts at once (row locks, guarded updates)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: SessionFactory | None = None,
        producer: TaskProducer | None = None,
        assume_db_continuity: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sessions = sessions or _unpooled_sessions(settings.database_url)
        self.producer = producer or TaskProducer(settings)
        # A one-shot pass (synib reconcile) trusts heartbeats at once; the periodic one waits
        # until it has seen the database up, without a gap, for a whole staleness period.
        self.assume_db_continuity = assume_db_continuity
        self._db_up_since: float | None = None
        self._db_seen_at: float | None = None
        # Longer than this between two successful passes, and an outage may have gone unseen.
        self.max_gap_s = 2 * max(settings.reconcile_interval_s, 1.0)

    def run_once(self) -> HousekeepingResult:
        """One pass (see the module docstring); database errors propagate."""
        result = HousekeepingResult()
        try:
            self._pass(result)
        except Exception as exc:
            if is_connection_error(exc):
                self._db_up_since = None
            raise
        return result

    def _database_seen(self) -> None:
        """The database answered now: the streak of reachability goes on, or starts anew."""
        now = self.clock()
        gap = None if self._db_seen_at is None else now - self._db_seen_at
        if self._db_up_since is None or gap is None or gap > self.max_gap_s:
            self._db_up_since = now
        self._db_seen_at = now

    def _heartbeats_trustworthy(self) -> bool:
        if self.assume_db_continuity:
            return True
        assert self._db_up_since is not None
        return self.clock() - self._db_up_since >= self.settings.heartbeat_stale_s

    def _pass(self, result: HousekeepingResult) -> None:
        self._remove_stale_temp_files(result)
        stale_before = utcnow() - timedelta(seconds=self.settings.heartbeat_stale_s)
        with self.sessions() as session:
            expired = crud.list_expired_leases(session, stale_before=stale_before)
        self._database_seen()
        if self._heartbeats_trustworthy():
            self._end_expired_leases(expired, stale_before, result)
        self._resend_jobs(result)
        self._resend_datasets(result)
        self._resend_dataset_pids(result)

    def _end_expired_leases(
        self, expired: list[tuple[str, str]], stale_before: datetime, result: HousekeepingResult
    ) -> None:
        for job_id, status in expired:
            with self.sessions() as session:
                if status == JobStatus.RUNNING and crud.requeue_expired_lease(
                    session, job_id=job_id, stale_before=stale_before
                ):
                    log.warning("housekeeping: job %s lost its worker; resuming it", job_id)
                    result.resumed.append(job_id)
                elif status == JobStatus.CANCELLING and crud.cancel_expired_lease(
                    session, job_id=job_id, stale_before=stale_before
                ):
                    log.warning("housekeeping: job %s lost its worker while cancelling", job_id)
                    result.cancelled.append(job_id)

    def _resend_jobs(self, result: HousekeepingResult) -> None:
        now, first_after_s = utcnow(), self.settings.requeue_queued_after_s
        with self.sessions() as session:
            due = [
                s.id
                for s in crud.list_queued_job_sends(session)
                if s.id in result.resumed or resend_due(s, now=now, first_after_s=first_after_s)
            ]
        for job_id in due:
            task_id = self.producer.send(RUN_JOB, job_id)
            if task_id is None:
                return  # the broker is down: the next pass tries again
            with self.sessions() as session:
                crud.mark_job_sent(session, job_id=job_id, task_id=task_id)
            log.warning("housekeeping: sent %s(%s) again", RUN_JOB, job_id)
            result.resent.append(job_id)

    def _resend_datasets(self, result: HousekeepingResult) -> None:
        now, first_after_s = utcnow(), self.settings.requeue_queued_after_s
        with self.sessions() as session:
            pending = crud.list_pending_dataset_sends(session)
        for state in pending:
            if not resend_due(state, now=now, first_after_s=first_after_s):
                continue
            if self.producer.send(MAKE_DATASET, state.id) is None:
                return
            with self.sessions() as session:
                crud.mark_dataset_sent(session, dataset_id=state.id)
            log.warning("housekeeping: sent %s(%s) again", MAKE_DATASET, state.id)
            result.datasets_resent.append(state.id)

    def _resend_dataset_pids(self, result: HousekeepingResult) -> None:
        now, first_after_s = utcnow(), self.settings.requeue_queued_after_s
        with self.sessions() as session:
            queued = crud.list_queued_dataset_pids(session)
        for state in queued:
            if not resend_due(state, now=now, first_after_s=first_after_s):
                continue
            if self.producer.send(DATASET_PID, state.id) is None:
                return
            with self.sessions() as session:
                crud.mark_dataset_pid_sent(session, dataset_id=state.id)
            log.warning("housekeeping: sent %s(%s) again", DATASET_PID, state.id)
            result.pids_resent.append(state.id)

    def _remove_stale_temp_files(self, result: HousekeepingResult) -> None:
        store = open_store(self.settings)
        try:
            removed = store.remove_stale_temp_files(self.settings.temp_file_max_age_s)
        except StorageError as exc:
            log.warning("housekeeping: temporary files not cleaned: %s (%s)", exc, exc.cause)
            return
        if removed:
            log.info("housekeeping: removed %d stale temporary file(s)", len(removed))
        result.temp_files_removed.extend(removed)

    def close(self) -> None:
        self.producer.close()


def _unpooled_sessions(database_url: str) -> sessionmaker[Session]:
    """Sessions without a connection pool: a pass every half minute needs no kept connection."""
    return make_session_factory(make_engine(database_url, poolclass=NullPool))
