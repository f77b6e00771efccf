"""Worker fixtures: a real Celery worker process on the real Redis broker, against the migrated
PostgreSQL test database, with a private local Ray per job (started by the worker's child).

The broker is Redis database 14 (flushed when the module starts), so that nothing else on the
machine's Redis is touched.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_testing import BROKER_URL, REPO, WorkerHarness, wait_for


def _flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()


@pytest.fixture(scope="module")
def worker_harness(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A Celery worker subprocess (concurrency 1) consuming queue ``synib``."""
    from api.settings import Settings
    from worker.db_ops import session_factory

    state = tmp_path_factory.mktemp("worker_state")
    ray_tmp = Path(f"/tmp/srw_{secrets.token_hex(3)}")
    env = {
        **os.environ,
        "SYNIB_STATE_DIR": str(state),
        "SYNIB_DATABASE_URL": pg_database_url,
        "SYNIB_BROKER_URL": BROKER_URL,
        "SYNIB_RAY_TMP_DIR": str(ray_tmp),
        "SYNIB_CPUS": "2",
        "SYNIB_WORKER_CONCURRENCY": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("RAY_ADDRESS", None)
    settings = Settings(
        state_dir=state, database_url=pg_database_url, broker_url=BROKER_URL, ray_tmp_dir=ray_tmp
    )
    _flush_broker()
    log_path = state / "worker.log"
    celery = Path(sys.executable).parent / "celery"
    command = [str(celery), "-A", "worker.celery_app", "worker", "-Q", "synib", "-c", "1"]
    command += ["-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    command += ["-n", f"test-{secrets.token_hex(3)}@%h"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    harness = WorkerHarness(settings, session_factory(pg_database_url), log_path, process)
    try:
        wait_for(
            lambda: " ready." in harness.log() or process.poll() is not None, 60, "worker ready"
        )
        assert process.poll() is None, f"the worker exited:\n{harness.log()[-3000:]}"
        yield harness
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _flush_broker()


@pytest.fixture(scope="module")
def owner_id(worker_harness: WorkerHarness) -> str:
    from api.db import crud

    with worker_harness.sessions() as session:
        return crud.create_user(session, name=f"worker-{secrets.token_hex(3)}").id
