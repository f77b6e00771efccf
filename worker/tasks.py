"""Celery tasks (thin: ids in, the work in ``worker.job_runner`` / ``worker.datasets`` /
``worker.dataset_pid``).

Every task is safe to run twice: ``run_job`` only claims a ``queued`` job;
``make_dataset`` does nothing unless the dataset is still ``pending``; ``dataset_pid`` does
nothing unless a PID was requested and has not finished.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from infra.db import crud
from infra.db.session import session_factory
from infra.object_store import open_store
from infra.settings import get_settings
from worker import job_runner
from worker.celery_app import app
from worker.dataset_pid import run_dataset_pid
from worker.datasets import materialise_dataset

log = logging.getLogger(__name__)


def _worker_name(task: Any) -> str:
    """``<celery node name>/<pid>``: unique per worker process, the job's lease holder."""
    hostname = getattr(task.request, "hostname", None)
    return f"{hostname or socket.gethostname()}/{os.getpid()}"


@app.task(name="synib.run_job", bind=True, max_retries=None)
def run_job(self: Any, job_id: str) -> str:
    """Run the queued job the fair rule picks (``job_id``'s or another user's: docs/
    ARCHITECTURE.md, "Fair scheduling") to a final status; returns it (or ``skipped``).

    While ``job_id`` stays queued this message is not spent: it goes back to the queue at once
    when it served another job, and after ``queue_wait_s`` when no job could start (its user
    runs ``max_running_jobs_per_user`` jobs already).
    """
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    worker = _worker_name(self)
    task_id = getattr(self.request, "id", None)
    claim = job_runner.claim_fair_job(
        job_id, settings=settings, sessions=sessions, worker=worker, task_id=task_id
    )
    if claim.job is None:
        if claim.message_job_waits:
            log.info("run_job %s: its user is at the running limit; waiting", job_id)
            raise self.retry(countdown=settings.queue_wait_s)
        log.info("run_job %s: no queued job may start now, nothing to do", job_id)
        return "skipped"
    if claim.message_job_waits:
        self.retry(countdown=0, throw=False)
    return job_runner.run_claimed_job(
        claim.job, settings=settings, sessions=sessions, worker=worker
    )


@app.task(name="synib.make_dataset", bind=True)
def make_dataset(self: Any, dataset_id: str) -> str:
    """Generate the pending built-in dataset ``dataset_id``; returns its status afterwards."""
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    try:
        return materialise_dataset(sessions, open_store(settings), dataset_id)
    except Exception as exc:
        log.exception("make_dataset %s: internal error", dataset_id)
        with sessions() as session:
            reason = f"internal error ({type(exc).__name__}); see the worker log"
            crud.mark_dataset_failed(session, dataset_id=dataset_id, error=reason)
        return "failed"


@app.task(name="synib.dataset_pid", bind=True)
def dataset_pid(self: Any, dataset_id: str) -> str:
    """Compute the requested PID of dataset ``dataset_id``; returns its status afterwards."""
    settings = get_settings()
    sessions = session_factory(settings.database_url)
    try:
        return run_dataset_pid(sessions, open_store(settings), dataset_id)
    except Exception as exc:
        log.exception("dataset_pid %s: internal error", dataset_id)
        with sessions() as session:
            reason = f"internal error ({type(exc).__name__}); see the worker log"
            crud.set_dataset_pid(
                session,
                dataset_id=dataset_id,
                pid={"status": "failed", "pairs": [], "verdict": None, "error": reason},
            )
        return "failed"
