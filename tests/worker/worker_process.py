"""Start a real Celery worker process (Redis broker, PostgreSQL state, private local Ray) for
tests, and drive jobs through it. Shared by tests/worker and tests/reliability (import it after
putting tests/worker on sys.path: test directories have no packages).

The broker is a Redis database of its own (default 14; flushed at start and stop), so that
nothing else on the machine's Redis is touched; one harness per database at a time.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from worker_testing import BROKER_URL, MARKER_ENV, REPO, WorkerHarness, wait_for

JOB_TIMEOUT_S = 240
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def flush_broker(broker_url: str = BROKER_URL) -> None:
    import redis

    redis.Redis.from_url(broker_url).flushdb()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def end_earlier_jobs(database_url: str) -> None:
    """Cancel the jobs earlier test modules left queued or running in the session's database:
    a worker takes the fair queue's first job, not only its message's own (docs/ARCHITECTURE.md,
    "Fair scheduling"), so a job left behind would be run by the next module's worker."""
    from sqlalchemy import create_engine, update

    from infra.db.models import JOB_ACTIVE, Job

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(Job).where(Job.status.in_(JOB_ACTIVE)).values(status="cancelled"))
    finally:
        engine.dispose()


@contextmanager
def running_worker(
    database_url: str,
    state: Path,
    extra_env: dict[str, str] | None = None,
    broker_url: str = BROKER_URL,
) -> Iterator[WorkerHarness]:
    """A Celery worker subprocess (concurrency 1, queue ``synib``, 2 Ray CPUs) until the block
    ends; ``extra_env`` adds or overrides environment variables (e.g. ``SYNIB_*`` settings).

    Its environment carries ``MARKER_ENV=<a token of its own>``, which every process it starts
    inherits (its local Ray's processes too): ``harness.marker`` finds them."""
    from infra.db.session import session_factory
    from infra.settings import Settings

    marker = f"{MARKER_ENV}={secrets.token_hex(4)}"
    env = {
        **os.environ,
        "SYNIB_STATE_DIR": str(state),
        "SYNIB_DATABASE_URL": database_url,
        "SYNIB_BROKER_URL": broker_url,
        MARKER_ENV: marker.split("=", 1)[1],
        "SYNIB_CPUS": "2",
        "SYNIB_WORKER_CONCURRENCY": "1",
        "SYNIB_RECONCILE_INTERVAL_S": "0",  # off unless a test asks (extra_env)
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        **(extra_env or {}),
    }
    env.pop("RAY_ADDRESS", None)
    # The worker's own settings (its artifact and Tune storage, say), as the test reads them.
    extra = extra_env or {}
    given = {k[len("SYNIB_") :].lower(): v for k, v in extra.items() if k.startswith("SYNIB_")}
    settings = Settings(
        **{**given, "state_dir": state, "database_url": database_url, "broker_url": broker_url}
    )
    flush_broker(broker_url)
    end_earlier_jobs(database_url)
    log_path = state / "worker.log"
    celery = Path(sys.executable).parent / "celery"
    command = [str(celery), "-A", "worker.celery_app", "worker", "-Q", "synib", "-c", "1"]
    command += ["-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    command += ["-n", f"test-{secrets.token_hex(3)}@%h"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    harness = WorkerHarness(settings, session_factory(database_url), log_path, process, marker)
    try:
        wait_for(
            lambda: " ready." in harness.log() or process.poll() is not None, 60, "worker ready"
        )
        assert process.poll() is None, f"the worker exited:\n{harness.log()[-3000:]}"
        yield harness
    finally:
        _stop(process)
        flush_broker(broker_url)


def create_owner(harness: WorkerHarness) -> str:
    """A fresh user; returns its id."""
    from infra.db import crud

    with harness.sessions() as session:
        return str(crud.create_user(session, name=f"worker-{secrets.token_hex(3)}").id)


def create_job(
    harness: WorkerHarness, owner_id: str, spec: dict[str, Any], dataset_params: dict[str, Any]
) -> str:
    """A pending built-in xor_pid dataset and a queued job on it (the job materialises it)."""
    from infra.db import crud

    with harness.sessions() as session:
        dataset = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="tiny-pid",
            source="builtin",
            builtin_name="xor_pid",
            params=dataset_params,
            status="pending",
        )
        job = crud.create_job(
            session,
            owner_id=owner_id,
            dataset_id=dataset.id,
            name="t",
            spec={**spec, "dataset_id": dataset.id},
            trials_total=0,
        )
        return str(job.id)


def job_status(harness: WorkerHarness, job_id: str) -> str:
    from infra.db import crud

    with harness.sessions() as session:
        job = crud.get_job(session, job_id=job_id)
        assert job is not None
        return str(job.status)


def wait_final(harness: WorkerHarness, job_id: str, timeout: float = JOB_TIMEOUT_S) -> str:
    """The job's final status (fails with the worker log's tail after ``timeout`` seconds)."""
    try:
        status = wait_for(
            lambda: (s := job_status(harness, job_id)) in FINAL_STATUSES and s,
            timeout,
            f"job {job_id} to finish",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker log:\n{harness.log()[-3000:]}") from None
    return str(status)
