"""Several jobs back to back through one worker process: every one runs (none stays ``queued``
behind a pool child that could not start), the pool child starts one Ray at its first job and
keeps it for all of them, and trial statuses reach the database and the event stream live,
before the job's final status."""

from __future__ import annotations

import json
import time

import pytest
from worker_process import create_job, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params

from infra.db import crud
from infra.storage import ArtifactStore

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

JOBS = 3


def tiny_spec() -> dict:
    """Two 1-epoch trials (vanilla, synib) of a tiny model on one seed."""
    return {
        "methods": ["vanilla", "synib"],
        "config": tiny_config(),
        "epochs": 1,
        "sweep": {},
        "seeds": [0],
    }


@pytest.fixture(scope="module")
def finished_jobs(worker_harness: WorkerHarness, owner_id: str) -> list[str]:
    """``JOBS`` jobs sent at once to the one-slot worker; each waited for in turn."""
    params = {**tiny_pid_params(), "seed": 0}
    job_ids = [create_job(worker_harness, owner_id, tiny_spec(), params) for _ in range(JOBS)]
    for job_id in job_ids:
        worker_harness.send("synib.run_job", job_id)
    for job_id in job_ids:
        assert wait_final(worker_harness, job_id) == "succeeded"
    # The last task's "succeeded in" line follows its job's final status.
    deadline = time.monotonic() + 60
    while worker_harness.log().count("succeeded in") < JOBS and time.monotonic() < deadline:
        time.sleep(0.2)
    return job_ids


def test_jobs_back_to_back_all_succeed_and_children_exit_cleanly(
    worker_harness: WorkerHarness, finished_jobs: list[str]
) -> None:
    log = worker_harness.log()
    assert log.count("succeeded in") >= JOBS, log[-3000:]
    assert "exited with 'signal" not in log, log[-3000:]
    assert "WorkerLostError" not in log and "resuming its Tune experiment" not in log, log[-3000:]
    # One Ray for all the jobs: started once, at the first job.
    assert log.count("ray.init took") == 1, log[-3000:]
    nodes = {place["node_id"] for place in placements(worker_harness, finished_jobs)}
    assert len(nodes) == 1, nodes


def test_trials_succeed_live_with_their_own_finish_times(
    worker_harness: WorkerHarness, finished_jobs: list[str]
) -> None:
    for job_id in finished_jobs:
        with worker_harness.sessions() as session:
            trials = crud.list_trials(session, job_id=job_id)
            events = crud.list_events(session, job_id=job_id, limit=10_000)
        assert len(trials) == 2 and {t.status for t in trials} == {"succeeded"}
        finished = [t.finished_at for t in trials]
        assert None not in finished and finished[0] != finished[1]
        for trial in trials:
            assert trial.started_at is not None and trial.started_at <= trial.finished_at
            assert "test_acc" in trial.metrics and trial.best_epoch == 1
        final = max(e.id for e in events if e.type == "status")
        succeeded = [
            e.id for e in events if e.type == "trial" and e.data.get("status") == "succeeded"
        ]
        assert len(succeeded) == 2 and max(succeeded) < final


def placements(harness: WorkerHarness, job_ids: list[str]) -> list[dict]:
    """Where each trial of the jobs ran (``placement`` in its result.json)."""
    store = ArtifactStore(harness.settings.artifact_root)
    found = []
    for job_id in job_ids:
        with harness.sessions() as session:
            trials = crud.list_trials(session, job_id=job_id)
        for trial in trials:
            result = json.loads(store.resolve(f"jobs/{job_id}/{trial.id}/result.json").read_text())
            found.append(result["placement"])
    return found
