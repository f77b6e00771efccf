"""Fair scheduling between users through a real Celery worker (one slot), Redis, PostgreSQL and
a local Ray: a ``synib.run_job`` message runs the fair queue's first job, and a job whose user
is at ``max_running_jobs_per_user`` waits (its message comes back) until a place frees."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from worker_process import create_job, create_owner, job_status, running_worker, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params, wait_for

from infra.db import crud

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def harness(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A one-slot worker; a user runs one job at a time; a waiting job is looked at every 1 s."""
    env = {"SYNIB_MAX_RUNNING_JOBS_PER_USER": "1", "SYNIB_QUEUE_WAIT_S": "1"}
    state = tmp_path_factory.mktemp("fair_state")
    with running_worker(pg_database_url, state, extra_env=env) as harness:
        yield harness


def tiny_job(harness: WorkerHarness, owner: str) -> str:
    spec = {"methods": ["vanilla"], "config": tiny_config(), "epochs": 1, "sweep": {}}
    return create_job(harness, owner, spec, {**tiny_pid_params(), "seed": 0})


def test_a_second_user_goes_before_the_first_users_second_job(harness: WorkerHarness) -> None:
    alice, bob = create_owner(harness), create_owner(harness)
    alices = [tiny_job(harness, alice) for _ in range(3)]
    bobs = tiny_job(harness, bob)
    for job_id in [*alices, bobs]:  # one message per job, in the order they were submitted
        harness.send("synib.run_job", job_id)
    for job_id in [*alices, bobs]:
        assert wait_final(harness, job_id) == "succeeded"
    with harness.sessions() as session:
        started = {j: crud.get_job(session, job_id=j).started_at for j in [*alices, bobs]}  # type: ignore[union-attr]
    order = sorted(started, key=lambda j: started[j])  # type: ignore[arg-type, return-value]
    assert order == [alices[0], bobs, alices[1], alices[2]]
    assert "goes first (fair order)" in harness.log()


def test_a_job_waits_while_its_user_runs_their_limit(harness: WorkerHarness) -> None:
    carol = create_owner(harness)
    elsewhere = tiny_job(harness, carol)  # running on another worker: carol's one place
    with harness.sessions() as session:
        assert crud.claim_job(session, job_id=elsewhere, worker="elsewhere/1") is not None
    waiting = tiny_job(harness, carol)
    harness.send("synib.run_job", waiting)
    # A task behind it on the one-slot worker: once it is done, the message was looked at.
    with harness.sessions() as session:
        marker = crud.create_dataset(
            session,
            owner_id=carol,
            name="marker",
            source="builtin",
            builtin_name="xor_spurious",
            params={"n_train": 20, "n_val": 10, "n_test": 10, "seed": 1},
            status="pending",
        )
    harness.send("synib.make_dataset", marker.id)

    def marker_ready() -> bool:
        with harness.sessions() as session:
            row = crud.get_dataset(session, dataset_id=marker.id)
            return row is not None and row.status == "ready"

    wait_for(marker_ready, 120, "the marker dataset")
    assert job_status(harness, waiting) == "queued"
    assert f"run_job {waiting}: its user is at the running limit; waiting" in harness.log()
    # The other job ends: the waiting one's message, back every second, now runs it.
    with harness.sessions() as session:
        crud.set_job_status(session, job_id=elsewhere, status="cancelled")
    assert wait_final(harness, waiting) == "succeeded"
