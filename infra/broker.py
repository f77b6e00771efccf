"""The task queue, as the API, the worker and the housekeeper share it: queue and task names, the
Celery app every process builds on the configured broker, and the producer that sends tasks by
name after the database commit.

Full mode uses Redis (``SYNIB_BROKER_URL=redis://...``). The embedded mode (``synib serve``)
needs a broker without a server: kombu's SQLAlchemy transport on a SQLite file in the state
folder (``sqla+sqlite:///<state_dir>/broker.sqlite``, the default). Only public Celery and
kombu API is used: a message that is lost or never sent is found from the database alone by
the housekeeping (``worker/housekeeping.py``), never by reading the broker's storage.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Queue
from kombu.exceptions import ChannelError

from infra.settings import Settings

QUEUE = "synib"  # training tasks (synib worker)
HOUSEKEEPING_QUEUE = "synib.housekeeping"  # the periodic pass (synib housekeeper)
RUN_JOB = "synib.run_job"
MAKE_DATASET = "synib.make_dataset"
DATASET_PID = "synib.dataset_pid"
HOUSEKEEPING = "synib.housekeeping"
TASK_QUEUES = {
    RUN_JOB: QUEUE,
    MAKE_DATASET: QUEUE,
    DATASET_PID: QUEUE,
    HOUSEKEEPING: HOUSEKEEPING_QUEUE,
}
# A send retries a failing broker briefly (the request waits for it), then gives up: the job's
# row is committed and stays queued, and the housekeeping sends it again.
SEND_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
BROKER_CONNECT_TIMEOUT_S = 3.0
# A writer waits this long for another process's lock on the embedded broker's SQLite file.
SQLITE_BUSY_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)


def _embedded_broker_connector(path: Path) -> Any:
    """``create_engine(creator=...)`` for the embedded broker: makes the state folder at the
    first connection (nothing is created when an app is built), waits for other processes'
    locks, and uses write-ahead logging so that producers do not block the consumers' polls."""

    def connect() -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    return connect


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu transport options for the configured broker (the same in every process)."""
    path = settings.embedded_broker_file
    if path is not None:
        # The SQLAlchemy transport passes its options to create_engine.
        return {"creator": _embedded_broker_connector(path)}
    # A job may run for hours; Redis must not redeliver an unacked message meanwhile.
    return {"visibility_timeout": settings.job_hard_time_limit_s + 3600}


def make_celery_app(settings: Settings, main: str, include: Sequence[str] = ()) -> Celery:
    """A Celery app on the configured broker: JSON messages, tasks routed to their queues, no
    result backend (job state lives in the database)."""
    app = Celery(main, broker=settings.broker_url, include=list(include))
    app.conf.update(
        broker_transport_options=transport_options(settings),
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        enable_utc=True,
    )
    return app


class TaskProducer:
    """Sends tasks by name in the caller's thread (any thread: Celery pools its connections); a
    failed send is logged, never raised. Building one connects to nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._celery = make_celery_app(settings, "synib-producer")

    def send(self, name: str, object_id: str, task_id: str | None = None) -> str | None:
        """Send task ``name`` with the single argument ``object_id`` to its queue; the task id,
        or None when the broker could not be reached (the housekeeping sends it later).
        ``task_id`` (default: a fresh one) lets a caller store the id with its row first."""
        try:
            result = self._celery.send_task(
                name,
                args=[object_id],
                queue=TASK_QUEUES.get(name, QUEUE),
                task_id=task_id,
                retry=True,
                retry_policy=SEND_RETRY_POLICY,
            )
            return str(result.id)
        except Exception as exc:
            log.warning(
                "could not enqueue %s(%s) (%s: %s); the housekeeping will resend it",
                name,
                object_id,
                type(exc).__name__,
                exc,
            )
            return None

    def _waiting(self, queue: str) -> int:
        """Messages waiting in ``queue`` (kombu's passive queue declare); raises if the broker
        cannot be reached."""
        with self._celery.connection_for_write() as conn:
            # A probe answers at once (kombu would otherwise retry for seconds).
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            try:
                declared = Queue(queue, channel=conn.default_channel).queue_declare(passive=True)
            except ChannelError:  # never declared (Redis: an empty queue does not exist)
                return 0
            return int(declared.message_count)

    def queue_depth(self, queue: str = QUEUE) -> int | None:
        """Messages waiting in ``queue`` (None when the broker cannot be read)."""
        try:
            return self._waiting(queue)
        except Exception:
            log.warning("cannot read the depth of queue %s", queue, exc_info=True)
            return None

    def check(self) -> str | None:
        """None when the broker answers, else the reason."""
        try:
            self._waiting(QUEUE)
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

    def close(self) -> None:
        """Release the broker connections (a later send opens new ones)."""
        self._celery.close()
