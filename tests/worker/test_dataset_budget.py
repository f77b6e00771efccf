"""The worker checks a built-in dataset's size budget (``max_builtin_dataset_mb``) again
before generating it: a row that got past the API (inserted directly here, or registered
before the limit was lowered) fails with the reason, and no file is written. A real Celery
worker on Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from db_testing import redis_url
from worker_process import create_owner, running_worker
from worker_testing import WorkerHarness, wait_for

from infra.db import crud

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

BROKER_URL = redis_url(10)  # its own database: no other test worker takes its messages


@pytest.fixture(scope="module")
def small_budget_worker(
    pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A worker whose budget for built-in datasets is 1 MiB."""
    state = tmp_path_factory.mktemp("budget_worker")
    env = {"SYNIB_MAX_BUILTIN_DATASET_MB": "1"}
    with running_worker(pg_database_url, state, extra_env=env, broker_url=BROKER_URL) as harness:
        yield harness


def _pending(harness: WorkerHarness, owner_id: str, params: dict[str, int]) -> str:
    with harness.sessions() as session:
        row = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="direct",
            source="builtin",
            builtin_name="xor_pid",
            params={**params, "seed": 0},
            status="pending",
        )
        return str(row.id)


def _final(harness: WorkerHarness, dataset_id: str) -> tuple[str, str | None, str | None]:
    def done() -> tuple[str, str | None, str | None] | None:
        with harness.sessions() as session:
            row = crud.get_dataset(session, dataset_id=dataset_id)
            assert row is not None
            return None if row.status == "pending" else (row.status, row.error, row.path)

    try:
        return wait_for(done, 60, f"dataset {dataset_id} to be generated or refused")  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(harness.log()[-3000:]) from None


def test_an_over_budget_row_is_refused_by_the_worker(small_budget_worker: WorkerHarness) -> None:
    harness = small_budget_worker
    owner_id = create_owner(harness)
    over = _pending(harness, owner_id, {"n_train": 10_000})  # about 3.5 MiB
    harness.send("synib.make_dataset", over)
    status, error, path = _final(harness, over)
    assert status == "failed" and path is None
    assert error is not None and error.startswith("generator parameter 'n_train': ")
    assert "over the limit of 1 MiB (setting max_builtin_dataset_mb)" in error
    datasets = Path(harness.settings.artifact_root) / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir())

    within = _pending(harness, owner_id, {"n_train": 1000, "n_val": 100, "n_test": 200})
    harness.send("synib.make_dataset", within)  # about 0.4 MiB: generated
    assert _final(harness, within)[0] == "ready"
