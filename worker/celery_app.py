"""The Celery app of the training workers: queue ``synib``, one job at a time per pool child.

Start a worker with ``synib worker`` (``celery -A worker.celery_app worker -Q synib``). The
broker comes from ``infra.settings`` (``infra.broker``: Redis in full mode, a SQLite file in
embedded mode). The periodic housekeeping runs elsewhere (``worker.housekeeper``): a training
worker may be busy for hours.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Celery, signals

from infra.broker import QUEUE, make_celery_app
from infra.settings import Settings, get_settings
from worker.heartbeat import WorkerPresence


def make_celery(settings: Settings | None = None) -> Celery:
    """Build the training app (``settings`` default: the process settings)."""
    settings = settings or get_settings()
    app = make_celery_app(settings, "synib", include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
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
    )
    return app


app = make_celery()
__all__ = ["QUEUE", "app", "make_celery"]


@signals.worker_process_shutdown.connect
def _stop_ray(**_kwargs: Any) -> None:
    """A pool child that exits takes the Ray it started (at its first job) with it."""
    from worker.ray_session import shutdown_ray

    shutdown_ray()


_presence: list[WorkerPresence] = []


@signals.worker_ready.connect
def _announce_worker(sender: Any = None, **_kwargs: Any) -> None:
    """The worker consumes the queue from now on: its presence row tells ``GET /ready``."""
    from sqlalchemy.pool import NullPool

    from infra.db.session import make_engine, make_session_factory

    if sender is None or sender.app is not app:
        return  # another Celery app of this process (the housekeeper's)
    settings = get_settings()
    # NullPool: no pooled connection for the pool children forked later to inherit.
    sessions = make_session_factory(make_engine(settings.database_url, poolclass=NullPool))
    name = str(getattr(sender, "hostname", None) or socket.gethostname())
    presence = WorkerPresence(
        sessions,
        name,
        socket.gethostname(),
        os.getpid(),
        settings.worker_presence_interval_s,
        model_dir=settings.model_dir,
    )
    presence.start()
    _presence.append(presence)


@signals.worker_shutdown.connect
def _withdraw_worker(**_kwargs: Any) -> None:
    """A stopping worker takes no more jobs: its presence row goes."""
    while _presence:
        _presence.pop().stop()
