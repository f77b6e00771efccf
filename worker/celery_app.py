"""The Celery app ``synib``: broker from ``infra.settings``, one job at a time per pool child.

Start a worker with ``celery -A worker.celery_app worker -Q synib`` (or ``synib worker``).
Full mode uses Redis; embedded mode uses kombu's ``filesystem://`` transport with its folders
under ``<state_dir>/broker``. No result backend: job state lives in the database.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from infra.broker import transport_options
from infra.settings import Settings, get_settings

QUEUE = "synib"
TASK_NAMES = ("synib.run_job", "synib.make_dataset")


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker (filesystem folders, Redis visibility)."""
    if settings.uses_filesystem_broker:
        return transport_options(settings)  # the same folders the API's producer writes to
    # A job may run for hours; Redis must not redeliver an unacked message meanwhile.
    return {"visibility_timeout": settings.job_hard_time_limit_s + 3600}


def make_celery(settings: Settings | None = None) -> Celery:
    """Build the configured app (``settings`` default: the process settings)."""
    settings = settings or get_settings()
    app = Celery("synib", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        task_routes={name: {"queue": QUEUE} for name in TASK_NAMES},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        # No worker_max_tasks_per_child: recycling a pool child after each job made billiard
        # SIGTERM it (Celery resets SIGTERM to SIG_DFL in children) and occasionally left the
        # next child hung on a process-shared lock. The child runs job after job instead, on
        # one Ray it starts at its first job; ``worker.ray_session.ray_for_job`` restores the
        # signal handlers Ray and Tune replace (SIGUSR1: soft time limits, SIGTERM, SIGINT)
        # after each job.
        worker_max_tasks_per_child=None,
        # Celery's stdout redirection breaks `import ray.tune`.
        worker_redirect_stdouts=False,
        worker_hijack_root_logger=False,
        worker_concurrency=settings.worker_concurrency,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


app = make_celery()


_reconciler: Any = None


@signals.worker_ready.connect
def _start_reconciler(**_kwargs: Any) -> None:
    """Each worker's main process reconciles database and broker periodically (not in children)."""
    global _reconciler
    from worker.reconciler import start_background

    if _reconciler is None:
        _reconciler = start_background(get_settings())


@signals.worker_process_shutdown.connect
def _stop_ray(**_kwargs: Any) -> None:
    """A pool child that exits takes the Ray it started (at its first job) with it."""
    from worker.ray_session import shutdown_ray

    shutdown_ray()


@signals.worker_shutting_down.connect
def _stop_reconciler(**_kwargs: Any) -> None:
    global _reconciler
    if _reconciler is not None:
        _reconciler.stop()
        _reconciler = None
