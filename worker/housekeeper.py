"""The housekeeper: a small process of its own that runs the housekeeping pass periodically and
trains nothing (the training workers may be busy for hours).

It is a Celery worker on queue ``synib.housekeeping`` with the beat scheduler embedded, one
process (``--pool solo``), started by ``synib housekeeper``::

    celery -A worker.housekeeper worker -Q synib.housekeeping --beat --pool solo -c 1 \
        -s <state_dir>/housekeeper-schedule

Beat sends ``synib.housekeeping`` every ``reconcile_interval_s``; the same process runs it.
This module imports neither Ray nor the training code.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery import Celery
from kombu import Queue

from infra.broker import HOUSEKEEPING, HOUSEKEEPING_QUEUE, make_celery_app
from infra.settings import Settings, get_settings
from worker.db_retry import is_connection_error
from worker.housekeeping import Housekeeper

log = logging.getLogger(__name__)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One pass every ``reconcile_interval_s`` (none when it is 0). A pass that could not
    start before the next one is due is dropped (``expires``), so passes never pile up."""
    interval = settings.reconcile_interval_s
    if interval <= 0:
        return {}
    options = {"queue": HOUSEKEEPING_QUEUE, "expires": interval}
    return {"housekeeping": {"task": HOUSEKEEPING, "schedule": interval, "options": options}}


def make_housekeeper_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = make_celery_app(settings, "synib-housekeeper")
    app.conf.update(
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.housekeeper_schedule_file),
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
    )
    return app


app = make_housekeeper_app()
_housekeeper: Housekeeper | None = None


@app.task(name=HOUSEKEEPING)
def housekeeping() -> dict[str, list[str]]:
    """One housekeeping pass; what it did (job and dataset ids). A database outage skips the
    pass (the next one tries again)."""
    global _housekeeper
    if _housekeeper is None:  # one per process: it remembers since when the database is up
        _housekeeper = Housekeeper(get_settings())
    try:
        result = _housekeeper.run_once()
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        log.warning("housekeeping: pass skipped, database unavailable (%s)", type(exc).__name__)
        return {}
    finally:
        _drop_delivered_passes()
    if result:
        log.info("housekeeping: %s", result)
    return asdict(result)


def _drop_delivered_passes() -> None:
    """Empty the housekeeping queue after a pass: a pass still waiting there would only repeat
    this one, and kombu's SQLAlchemy transport (embedded mode) keeps every delivered message
    until its queue is purged (beat's 2,880 a day at the default interval)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            Queue(HOUSEKEEPING_QUEUE, channel=conn.default_channel).purge()
    except Exception as exc:  # the broker is down: the next pass purges
        log.warning("housekeeping: could not empty its queue (%s)", type(exc).__name__)
