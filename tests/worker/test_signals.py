"""Signals reaching the pool child while Ray Tune runs a job's trials.

Tune, run in the main thread, replaced the SIGINT and SIGUSR1 handlers and took either signal
as "end the experiment": ``tuner.fit`` returned with trials unfinished and the job was
completed, ``succeeded``, from part of its sweep. SIGUSR1 is how Celery raises a task's soft
time limit; a terminal's Ctrl-C (a warm shutdown) sends SIGINT to the pool child too. Tune now
runs off the main thread (``worker.tune_runner.fit_off_main_thread``), so:

- SIGINT is ignored by the pool child (Celery's rule): the job finishes with every trial;
- the soft time limit stops the trials and fails the job with its reason;
- the worker then runs the next job (Ray's CPUs were given back).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_process import create_job, create_owner, running_worker, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params, wait_for

from infra.db import crud

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

SOFT_LIMIT_S = 30  # the jobs under it start their trials' processes (seconds each)


@pytest.fixture(scope="module")
def harness(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    env = {
        "SYNIB_JOB_SOFT_TIME_LIMIT_S": str(SOFT_LIMIT_S),
        "SYNIB_JOB_HARD_TIME_LIMIT_S": str(SOFT_LIMIT_S + 120),
    }
    state = tmp_path_factory.mktemp("signals_state")
    with running_worker(pg_database_url, state, extra_env=env) as harness:
        # Jobs are timed from their task's start: a first job starts the worker's Ray.
        first = create_job(harness, create_owner(harness), spec(1, ["vanilla"]), tiny_pid_params())
        harness.send("synib.run_job", first)
        assert wait_final(harness, first) == "succeeded"
        yield harness


def spec(epochs: int, methods: list[str]) -> dict:
    return {
        "methods": methods,
        "config": tiny_config(),
        "epochs": epochs,
        "sweep": {},
        "seeds": [0],
    }


def pool_child(harness: WorkerHarness) -> int:
    """The Celery worker's one pool process (it runs the jobs and owns the local Ray)."""
    path = Path(f"/proc/{harness.process.pid}/task/{harness.process.pid}/children")
    children = [int(p) for p in path.read_text().split()]
    assert len(children) == 1, children
    return children[0]


def epochs_done(harness: WorkerHarness, job_id: str) -> int:
    with harness.sessions() as session:
        return sum(t.epochs_done or 0 for t in crud.list_trials(session, job_id=job_id))


def trials_of(harness: WorkerHarness, job_id: str) -> list:
    with harness.sessions() as session:
        return list(crud.list_trials(session, job_id=job_id))


def test_ctrl_c_in_the_pool_child_lets_the_job_finish(harness: WorkerHarness) -> None:
    owner = create_owner(harness)
    job_id = create_job(harness, owner, spec(40, ["vanilla", "synib"]), tiny_pid_params())
    harness.send("synib.run_job", job_id)
    wait_for(lambda: epochs_done(harness, job_id) >= 2, 120, "the trials to train")
    os.kill(pool_child(harness), signal.SIGINT)
    assert wait_final(harness, job_id) == "succeeded"
    trials = trials_of(harness, job_id)
    assert [t.status for t in trials] == ["succeeded", "succeeded"]
    assert all(t.epochs_done == 40 for t in trials), [t.epochs_done for t in trials]
    assert "Stop signal received" not in harness.log()


def test_soft_time_limit_stops_the_trials_and_fails_the_job(harness: WorkerHarness) -> None:
    owner = create_owner(harness)
    long_job = create_job(harness, owner, spec(5000, ["synib"]), tiny_pid_params())
    sent = time.monotonic()
    harness.send("synib.run_job", long_job)
    assert wait_final(harness, long_job, timeout=SOFT_LIMIT_S + 90) == "failed"
    assert time.monotonic() - sent < SOFT_LIMIT_S + 60
    with harness.sessions() as session:
        job = crud.get_job(session, job_id=long_job)
        assert job is not None
        assert job.failure_reason == "the job exceeded the worker's time limit"
    [trial] = trials_of(harness, long_job)
    assert trial.status == "failed" and 0 < trial.epochs_done < 5000
    assert trial.failure_reason == (
        "the job ended before this trial finished: the job exceeded the worker's time limit"
    )
    # The worker goes on: the next job gets Ray's CPUs and runs to the end.
    next_job = create_job(harness, owner, spec(2, ["vanilla"]), tiny_pid_params())
    harness.send("synib.run_job", next_job)
    assert wait_final(harness, next_job) == "succeeded"
