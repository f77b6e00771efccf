"""The running job's lease: a thread that renews ``jobs.heartbeat_at`` every few seconds; and
the worker's presence: a thread that renews its row in ``workers`` (what ``GET /ready`` counts)
with the pretrained models the worker offers (``GET /api/v1/models``).

The heartbeat is fenced (``infra.db.crud.beat_job``): it only updates the row while the job is
still ``running`` (or ``cancelling``) *for this worker*. If the housekeeping gave the job to
another worker (this one looked dead, e.g. it was frozen), the update touches nothing, ``lost``
becomes True and the run stops without writing a final status (``worker.job_runner`` checks
``owns_job``). Database errors are logged and retried at the next beat: a short outage costs
a few missed beats only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from infra.db import crud
from infra.db.session import SessionFactory
from synib_spec.model_registry import discover_models

__all__ = ["JobHeartbeat", "WorkerPresence"]

log = logging.getLogger(__name__)


class JobHeartbeat(threading.Thread):
    """``with JobHeartbeat(sessions, job_id, worker, interval_s):`` beats while the block runs."""

    def __init__(
        self, sessions: SessionFactory, job_id: str, worker: str, interval_s: float
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id[:8]}", daemon=True)
        self.sessions = sessions
        self.job_id = job_id
        self.worker = worker
        self.interval_s = interval_s
        self.lost = False
        self._stop_event = threading.Event()
        self._failing = False

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                with self.sessions() as session:
                    held = crud.beat_job(session, job_id=self.job_id, worker=self.worker)
                if self._failing:
                    log.info("job %s: heartbeat written again", self.job_id)
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    log.warning("job %s: heartbeat failed (%s)", self.job_id, type(exc).__name__)
                self._failing = True
                continue
            if not held:
                log.warning("job %s: no longer held by %s; stopping", self.job_id, self.worker)
                self.lost = True
                return

    def __enter__(self) -> JobHeartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class WorkerPresence(threading.Thread):
    """Renews worker ``name``'s presence row every ``interval_s`` seconds from ``start()``
    until ``stop()``, which removes the row. The row carries the models the worker offers,
    discovered once when the thread starts (``discover_models(model_dir)``: JSON files only).
    Database errors are logged once and retried at the next beat (a worker that cannot write
    looks absent: its jobs would stay queued)."""

    def __init__(
        self,
        sessions: SessionFactory,
        name: str,
        hostname: str,
        pid: int,
        interval_s: float,
        model_dir: Path | None = None,
    ) -> None:
        super().__init__(name="worker-presence", daemon=True)
        self.sessions = sessions
        self.worker_name = name
        self.hostname = hostname
        self.pid = pid
        self.interval_s = interval_s
        self.model_dir = model_dir
        self.models: list[dict[str, Any]] = []
        self._stop_event = threading.Event()
        self._failing = False

    def beat(self) -> None:
        try:
            with self.sessions() as session:
                crud.record_worker(
                    session,
                    name=self.worker_name,
                    hostname=self.hostname,
                    pid=self.pid,
                    models=self.models,
                )
            self._failing = False
        except Exception as exc:
            if not self._failing:
                log.warning("worker presence not written (%s)", type(exc).__name__)
            self._failing = True

    def run(self) -> None:
        try:
            self.models = [m.to_json() for m in discover_models(self.model_dir)]
        except Exception:  # a broken model folder must not keep the worker from serving
            log.exception("pretrained models not discovered; offering none")
        log.info(
            "offering %d pretrained models: %s",
            len(self.models),
            ", ".join(m["name"] for m in self.models) or "none",
        )
        self.beat()
        while not self._stop_event.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        try:
            with self.sessions() as session:
                crud.remove_worker(session, name=self.worker_name, pid=self.pid)
        except Exception as exc:
            log.warning("worker presence not removed (%s)", type(exc).__name__)
