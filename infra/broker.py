"""Producer side of the task queue: send ``synib.*`` tasks by name after the database commit.

The folder layout of the ``filesystem://`` broker matches ``worker/celery_app.py``
(``<state_dir>/broker/out`` for messages, ``<state_dir>/broker/processed``).
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery

import infra.fs_broker  # noqa: F401  (filesystem:// writes each message file atomically)
from infra.settings import Settings

QUEUE = "synib"
RUN_JOB = "synib.run_job"
MAKE_DATASET = "synib.make_dataset"
FILESYSTEM_POLL_S = 0.1
SEND_BATCH_MAX = 100  # messages the sender thread writes to the broker in one go
# How long the sender lets messages gather after the first one arrives: a job waits this much
# longer for its worker (nothing, next to its minutes of training); under load, messages then
# go out several at a time, each costing the API about half the CPU of one sent alone.
SEND_LINGER_S = 0.005
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

log = logging.getLogger(__name__)


def filesystem_folders(broker_dir: Path) -> dict[str, Path]:
    return {
        "data_folder_in": broker_dir / "out",
        "data_folder_out": broker_dir / "out",
        "processed_folder": broker_dir / "processed",
        # kombu keeps its exchange -> queue table here; its default is ./control in the cwd,
        # which would split producer and consumer started from different directories.
        "control_folder": broker_dir / "control",
    }


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu transport options for the configured broker (folders created if needed)."""
    if not settings.uses_filesystem_broker:
        return {}
    folders = filesystem_folders(settings.broker_dir)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    # A consumer lists the folder every polling_interval seconds (kombu's default: 1 s, which a
    # job waited for half of on average before a worker saw it).
    return {
        **{k: str(v) for k, v in folders.items()},
        "store_processed": False,
        "polling_interval": FILESYSTEM_POLL_S,
    }


_STOP = None


class TaskProducer:
    """Sends tasks by name; never raises (a failed send is logged and returns None).

    ``send`` publishes in the caller's thread. ``submit`` hands the message to one background
    sender thread and returns at once: an ``async`` route uses it so that neither the event
    loop nor a thread-pool hop waits on the broker. One thread sends them; those that waited
    together go out together (``_send_all``). ``close`` sends what is still waiting
    (``drain_timeout_s``). A message that is never sent (broker down,
    process killed) is not lost work: its row is committed first and the reconciler resends
    queued jobs whose message is missing from the broker."""

    def __init__(self, settings: Settings, drain_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.drain_timeout_s = drain_timeout_s
        self._celery: Celery | None = None
        self._outbox: queue.SimpleQueue[tuple[str, str, str | None] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()
        self._idle = threading.Condition()
        self._pending = 0

    def submit(self, name: str, object_id: str, task_id: str | None = None) -> None:
        """Queue task ``name(object_id)`` for the background sender (never blocks)."""
        with self._idle:
            self._pending += 1
        self._outbox.put((name, object_id, task_id))
        if self._sender is None:
            with self._sender_lock:
                if self._sender is None:
                    self._sender = threading.Thread(
                        target=self._send_loop, name="synib-task-sender", daemon=True
                    )
                    self._sender.start()

    def _send_loop(self) -> None:
        while True:
            items = [self._outbox.get()]
            if items[-1] is not _STOP:
                time.sleep(SEND_LINGER_S)
            while items[-1] is not _STOP and len(items) < SEND_BATCH_MAX:
                try:
                    items.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            stop = items[-1] is _STOP
            messages = [item for item in items if item is not _STOP]
            try:
                self._send_all(messages)
            finally:
                with self._idle:
                    self._pending -= len(messages)
                    self._idle.notify_all()
            if stop:
                return

    def _send_all(self, messages: list[tuple[str, str, str | None]]) -> None:
        """Send what waited in the outbox. Several go out together: kombu's ``Producer.batch``
        buffers them and writes them to Redis in one pipeline (the filesystem broker writes
        each file at once). If that fails, each is sent on its own with the retry policy, and
        those that still fail are logged for the reconciler; a message sent twice that way is
        harmless (``synib.run_job`` claims its job once)."""
        if len(messages) > 1:
            try:
                app = self._app()
                with app.producer_or_acquire() as producer, producer.batch():
                    for name, object_id, task_id in messages:
                        app.send_task(
                            name, args=[object_id], queue=QUEUE, task_id=task_id, producer=producer
                        )
                return
            except Exception:
                log.warning("sending %d messages at once failed; sending them one by one",
                            len(messages), exc_info=True)  # fmt: skip
        for message in messages:
            self.send(*message)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every submitted message was sent (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def _app(self) -> Celery:
        if self._celery is None:
            app = Celery("synib-api", broker=self.settings.broker_url)
            app.conf.update(
                broker_transport_options=transport_options(self.settings),
                broker_connection_timeout=3,
                broker_connection_retry=False,
                task_serializer="json",
                task_ignore_result=True,
            )
            self._celery = app
        return self._celery

    def send(self, name: str, object_id: str, task_id: str | None = None) -> str | None:
        """Send task ``name`` with the single argument ``object_id``; the task id or None.

        ``task_id`` (default: a fresh one) lets a caller store the id with its row in the same
        commit as the row itself."""
        try:
            result = self._app().send_task(
                name,
                args=[object_id],
                queue=QUEUE,
                retry=True,
                retry_policy=_RETRY_POLICY,
                task_id=task_id,
            )
            return str(result.id)
        except Exception:
            log.exception("could not enqueue %s(%s); a reconciler will resend it", name, object_id)
            return None

    def queue_depth(self) -> int | None:
        """Messages waiting in the ``synib`` queue (None when the broker cannot be read)."""
        try:
            if self.settings.uses_filesystem_broker:
                folder = filesystem_folders(self.settings.broker_dir)["data_folder_out"]
                if not folder.is_dir():
                    return 0
                return sum(1 for p in folder.iterdir() if p.name.endswith(f".{QUEUE}.msg"))
            return int(_redis_client(self.settings.broker_url).llen(QUEUE))
        except Exception:
            log.warning("cannot read the queue depth", exc_info=True)
            return None

    def check(self) -> str | None:
        """None when the broker is reachable (Redis ping / writable folder), else the reason."""
        try:
            if self.settings.uses_filesystem_broker:
                folder = filesystem_folders(self.settings.broker_dir)["data_folder_out"]
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
                    pass
                return None if os.access(folder, os.W_OK) else "broker folder not writable"
            _redis_client(self.settings.broker_url).ping()
            return None
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Send what ``submit`` still holds (at most ``drain_timeout_s``), then disconnect."""
        sender = self._sender
        if sender is not None:
            if not self.flush(self.drain_timeout_s):
                log.warning(
                    "%d task message(s) not sent at shutdown; the reconciler will resend them",
                    self._pending,
                )
            self._outbox.put(_STOP)
            sender.join(timeout=1.0)
            self._sender = None
        if self._celery is not None:
            self._celery.close()
            self._celery = None


def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
