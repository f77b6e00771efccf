"""Worker fixtures: a real Celery worker process on the real Redis broker, against the migrated
PostgreSQL test database, with a private local Ray per job (started by the worker's child).

The process itself is started by ``worker_process.running_worker`` (shared with
tests/reliability, which starts workers with extra settings such as fault injection).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from worker_process import create_owner, running_worker
from worker_testing import WorkerHarness


@pytest.fixture(scope="module")
def worker_harness(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A Celery worker subprocess (concurrency 1) consuming queue ``synib``."""
    with running_worker(pg_database_url, tmp_path_factory.mktemp("worker_state")) as harness:
        yield harness


@pytest.fixture(scope="module")
def owner_id(worker_harness: WorkerHarness) -> str:
    return create_owner(worker_harness)
