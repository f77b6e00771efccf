"""What one run of a job shares: the job row, settings, database sessions, artifact store and
the worker that holds the job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.db.models import Job
from infra.db.session import SessionFactory
from infra.settings import Settings
from infra.storage import Store
from worker.db_retry import write_with_retry


@dataclass
class JobContext:
    """Everything one run of a job shares (``worker``: who holds it; "" = not fenced)."""

    job: Job
    settings: Settings
    sessions: SessionFactory
    store: Store
    worker: str = ""

    def write(self, fn: Any, what: str) -> Any:
        """``fn(session)`` retried while the database is unreachable (``db_retry_max_s``)."""
        return write_with_retry(
            self.sessions,
            fn,
            what=f"{what} of job {self.job.id}",
            max_wait_s=self.settings.db_retry_max_s,
        )
