"""Failure reasons a user reads (the job's and its trials'): one clean line naming the cause,
never a Ray traceback with server paths, pid, node IP or colour codes; the traceback goes to the
worker log. Real Celery worker, Redis, PostgreSQL and local Ray, tiny xor_pid jobs whose
unimodal references (and trials) cannot train."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import worker_process
from worker_process import running_worker, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params

from infra.db import crud

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

# What a traceback leaks: a path in a frame, the pid and node IP of a Ray task, colour codes.
LEAKS = re.compile(r'\x1b|File "|pid=|ip=|\d+\.\d+\.\d+\.\d+|/work/|Traceback|\n')


@pytest.fixture(scope="module")
def worker_harness(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A CPU worker (no GPU visible to it or to its Ray), as in the issue, on any machine."""
    cpu_only = {"CUDA_VISIBLE_DEVICES": "", "SYNIB_GPUS": "0"}
    with running_worker(pg_database_url, tmp_path_factory.mktemp("cpu_worker"), cpu_only) as h:
        yield h


def run_failing_job(harness: WorkerHarness, owner_id: str, config: dict[str, Any]) -> Any:
    """A vanilla job whose knobs (``config``) make its references fail: (job, trials)."""
    spec = {
        "methods": ["vanilla"],
        "config": {**tiny_config(), **config},
        "epochs": 2,
        "sweep": {},
        "seeds": [0],
    }
    params = {**tiny_pid_params(), "seed": 0}
    job_id = worker_process.create_job(harness, owner_id, spec, params)
    harness.send("synib.run_job", job_id)
    assert wait_final(harness, job_id) == "failed"
    with harness.sessions() as session:
        job = crud.get_job(session, job_id=job_id)
        trials = crud.list_trials(session, job_id=job_id)
    return job, trials


def assert_clean(reason: str | None, cause: str) -> None:
    assert reason is not None and cause in reason, reason
    assert not LEAKS.search(reason), f"not one clean line: {reason!r}"


@pytest.mark.parametrize(
    ("config", "cause"),
    [
        ({"lr": 1e308}, "training diverged: loss is nan"),
        ({"device": "cuda"}, "'cuda' was requested but no CUDA device is available"),
    ],
    ids=["lr-1e308", "cuda-on-a-cpu-worker"],
)
def test_a_failed_reference_is_one_clean_line_and_the_traceback_is_logged(
    worker_harness: WorkerHarness, owner_id: str, config: dict[str, Any], cause: str
) -> None:
    job, trials = run_failing_job(worker_harness, owner_id, config)
    assert_clean(job.failure_reason, cause)
    assert "unimodal references of seed 0 failed" in job.failure_reason
    assert trials and all(t.status == "failed" for t in trials)
    for trial in trials:
        assert_clean(trial.failure_reason, cause)
    log = worker_harness.log()
    assert "in reference_predictions" in log and "in train_references" in log and cause in log
