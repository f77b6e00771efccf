"""Storage faults through a real Celery worker (Redis, PostgreSQL, local Ray): a write to an
unwritable artifact store is retried (and succeeds once the store is fixed, or fails the dataset
with a clean reason after the last try), a dataset deleted while the worker generates it leaves
no file, and generated datasets and a job's artifacts are owner-only (0600 files, 0700 folders).

The store is made unwritable with ``storage_testing.unwritable_folder`` (chmod, or for root the
immutable attribute); ``SYNIB_STORAGE_RETRY_DELAY_S=1`` gives the test 1 + 2 + 4 s to react to
the worker's first "retrying" line."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from storage_testing import unwritable_folder
from worker_process import create_owner, running_worker, wait_final
from worker_testing import WorkerHarness, tiny_config, tiny_pid_params, wait_for

from api.main import create_app
from infra.db import crud
from infra.settings import Settings
from infra.tokens import issue_token

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

TRIES = 4
RETRYING = "retrying in"


@pytest.fixture(scope="module")
def harness(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    state = tmp_path_factory.mktemp("storage_worker")
    env = {
        "SYNIB_STORAGE_RETRY_TRIES": str(TRIES),
        "SYNIB_STORAGE_RETRY_DELAY_S": "1",
        "SYNIB_TUNE_STORAGE": str(state / "tune"),  # outside the store this module breaks
    }
    with running_worker(pg_database_url, state, extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def owner(harness: WorkerHarness) -> str:
    return create_owner(harness)


def _pending_dataset(harness: WorkerHarness, owner: str) -> str:
    with harness.sessions() as session:
        row = crud.create_dataset(
            session,
            owner_id=owner,
            name="gen",
            source="builtin",
            builtin_name="xor_pid",
            params={**tiny_pid_params(), "seed": secrets.randbelow(10**6)},
            status="pending",
        )
        return str(row.id)


def _status(harness: WorkerHarness, dataset_id: str) -> tuple[str, str | None] | None:
    with harness.sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        return None if row is None else (str(row.status), row.error)


def _retries_logged(harness: WorkerHarness, what: str) -> int:
    return sum(1 for line in harness.log().splitlines() if what in line and RETRYING in line)


def _temp_files(root: Path) -> list[str]:
    folder = root / ".tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_storage_error_is_retried_and_the_dataset_made_once_the_store_is_fixed(
    harness: WorkerHarness, owner: str
) -> None:
    root = harness.settings.artifact_root
    dataset_id = _pending_dataset(harness, owner)
    with unwritable_folder(root):
        harness.send("synib.make_dataset", dataset_id)
        wait_for(lambda: _retries_logged(harness, dataset_id), 120, "the worker to retry")
    wait_for(lambda: _status(harness, dataset_id) == ("ready", None), 60, "the dataset ready")
    stored = root / "datasets" / f"{dataset_id}.npz"
    assert stored.stat().st_mode & 0o777 == 0o600
    for folder in (root, root / "datasets", root / ".tmp"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert _temp_files(root) == []


def test_a_store_that_stays_broken_fails_the_dataset_with_a_clean_reason(
    harness: WorkerHarness, owner: str
) -> None:
    dataset_id = _pending_dataset(harness, owner)
    with unwritable_folder(harness.settings.artifact_root):
        harness.send("synib.make_dataset", dataset_id)
        status = wait_for(
            lambda: (s := _status(harness, dataset_id)) and s[0] == "failed" and s, 120, "failure"
        )
    reason = status[1]
    assert reason.startswith("artifact storage is "), reason
    assert reason.endswith(f"; gave up after {TRIES} tries"), reason
    assert "/" not in reason.split("(")[0] and str(harness.settings.artifact_root) not in reason
    assert _retries_logged(harness, dataset_id) == TRIES - 1


def test_a_dataset_deleted_while_generated_leaves_no_file(
    harness: WorkerHarness, owner: str, tmp_path: Path
) -> None:
    """The worker has generated the data but cannot store it yet (the store is unwritable); the
    user deletes the dataset through the API (no file to delete yet); the store is fixed, the
    worker's next try stores the file, finds the row gone and removes the file."""
    root = harness.settings.artifact_root
    api = Settings(
        state_dir=harness.settings.state_dir,
        database_url=harness.settings.database_url,
        broker_url=harness.settings.broker_url,
        static_dir=tmp_path / "none",
        config_dir=tmp_path / "config",
    )
    with harness.sessions() as session:
        issued = issue_token(session, user_name=f"del-{secrets.token_hex(3)}")
    auth = {"Authorization": f"Bearer {issued.token}"}
    dataset_id = _pending_dataset(harness, issued.user_id)
    with TestClient(create_app(api)) as client, unwritable_folder(root):
        harness.send("synib.make_dataset", dataset_id)
        wait_for(lambda: _retries_logged(harness, dataset_id), 120, "the worker to retry")
        deleted = client.delete(f"/api/v1/datasets/{dataset_id}", headers=auth)
        assert deleted.status_code == 204, deleted.text
    gone = f"dataset {dataset_id}: deleted while generated; removing its file"
    wait_for(lambda: gone in harness.log(), 60, "the worker to find the dataset gone")
    wait_for(lambda: "'missing'" in harness.log(), 60, "the task to end")
    assert not (root / "datasets" / f"{dataset_id}.npz").exists()
    assert _temp_files(root) == []


def test_a_jobs_artifacts_survive_a_passing_storage_fault_and_are_owner_only(
    harness: WorkerHarness, owner: str
) -> None:
    """The job's dataset is already stored and Tune writes outside the store (its own folder);
    the store is unwritable when the trials' outputs are copied in: the worker retries, the
    store is fixed, the job succeeds with every artifact 0600 in 0700 folders."""
    root = harness.settings.artifact_root
    dataset_id = _pending_dataset(harness, owner)
    harness.send("synib.make_dataset", dataset_id)
    wait_for(lambda: _status(harness, dataset_id) == ("ready", None), 120, "the dataset ready")
    spec = {
        "methods": ["vanilla"],
        "config": tiny_config(),
        "epochs": 1,
        "seeds": [0],
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "dataset_id": dataset_id,
    }
    with harness.sessions() as session:
        job = crud.create_job(
            session, owner_id=owner, dataset_id=dataset_id, name="j", spec=spec, trials_total=0
        )
        job_id = str(job.id)
    with unwritable_folder(root):
        harness.send("synib.run_job", job_id)
        wait_for(lambda: _retries_logged(harness, f"job {job_id}"), 240, "the worker to retry")
    assert wait_final(harness, job_id) == "succeeded"
    job_folder = root / "jobs" / job_id
    files = [p for p in job_folder.rglob("*") if p.is_file()]
    assert files and {p.stat().st_mode & 0o777 for p in files} == {0o600}
    folders = [job_folder, *(p for p in job_folder.rglob("*") if p.is_dir())]
    assert {p.stat().st_mode & 0o777 for p in folders} == {0o700}
