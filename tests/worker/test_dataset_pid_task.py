"""``synib.dataset_pid`` through a real Celery worker (Redis, PostgreSQL) on a tiny xor_pid
dataset: the PID and its verdict are stored on the dataset, a redelivered message changes
nothing, and a failure is stored as such (the worker keeps serving)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from worker_testing import WorkerHarness, tiny_pid_params, wait_for

from infra.db import crud
from infra.db.session import session_factory
from infra.storage import ArtifactStore
from synib_core.metrics.pid import INSTALL_HINT
from worker.dataset_pid import run_dataset_pid

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

QUEUED = {"status": "queued", "clusters": None, "pairs": [], "verdict": None, "error": None}


def pid_state(harness: WorkerHarness, dataset_id: str) -> dict[str, Any] | None:
    with harness.sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        assert row is not None
        return row.pid


def finished(harness: WorkerHarness, dataset_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        state = pid_state(harness, dataset_id)
        return state if state and state["status"] in ("succeeded", "failed") else None

    try:
        return wait_for(done, 60, f"the PID of dataset {dataset_id}")  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(harness.log()[-3000:]) from None


def test_pid_of_a_tiny_xor_pid_dataset(worker_harness: WorkerHarness, owner_id: str) -> None:
    pytest.importorskip("cvxpy")
    with worker_harness.sessions() as session:
        row = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="tiny-pid",
            source="builtin",
            builtin_name="xor_pid",
            params={**tiny_pid_params(), "seed": 0},
            status="pending",
        )
        dataset_id = str(row.id)
    worker_harness.send("synib.make_dataset", dataset_id)

    def ready() -> bool:
        with worker_harness.sessions() as session:
            row = crud.get_dataset(session, dataset_id=dataset_id)
            return row is not None and row.status == "ready"

    wait_for(ready, 60, "the dataset generated")
    with worker_harness.sessions() as session:
        crud.set_dataset_pid(session, dataset_id=dataset_id, pid={**QUEUED, "clusters": 3})
    worker_harness.send("synib.dataset_pid", dataset_id)
    state = finished(worker_harness, dataset_id)
    assert state["status"] == "succeeded", state
    assert state["error"] is None and state["clusters"] == 3
    [pair] = state["pairs"]
    assert pair["modalities"] == ["a", "b"] and pair["target"] == "label"
    assert pair["states"] == {"a": 3, "b": 3} and pair["n"] == 560  # every row of the file
    terms = pair["redundancy"] + pair["unique"]["a"] + pair["unique"]["b"] + pair["synergy"]
    assert terms == pytest.approx(pair["total"], abs=1e-6)
    assert min(pair["redundancy"], pair["synergy"], *pair["unique"].values()) >= 0
    assert state["verdict"].split(" (")[0] in (
        "little information about the label",
        "little synergy",
        "some synergy",
        "much synergy",
    )

    # A redelivered message finds the PID finished and leaves it alone.
    worker_harness.send("synib.dataset_pid", dataset_id)
    with worker_harness.sessions() as session:  # a marker behind it on the one-slot worker
        crud.set_dataset_pid(session, dataset_id=dataset_id, pid=state)
        marker = crud.create_dataset(
            session,
            owner_id=owner_id,
            name="marker",
            source="upload",
            status="ready",
            path="datasets/nowhere.npz",
        )
        crud.set_dataset_pid(session, dataset_id=marker.id, pid=QUEUED)
    worker_harness.send("synib.dataset_pid", marker.id)
    # The marker's file is missing: stored as a failure, the worker carries on.
    failed = finished(worker_harness, marker.id)
    assert failed["status"] == "failed"
    assert failed["error"] == "the dataset's file is missing from the store"
    assert pid_state(worker_harness, dataset_id) == state
    assert worker_harness.process.poll() is None


def test_without_cvxpy_the_pid_fails_with_the_install_hint(
    pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synib_core.data import make_dataset, save_npz

    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy: ImportError
    sessions = session_factory(pg_database_url)
    store = ArtifactStore(tmp_path / "artifacts")
    tmp = store.new_temp_file(suffix=".npz")
    save_npz(make_dataset("xor_pid", 0, **tiny_pid_params()), tmp)
    store.put(tmp, "datasets/tiny.npz")
    with sessions() as session:
        owner = crud.create_user(session, name="pid-owner")
        row = crud.create_dataset(
            session,
            owner_id=owner.id,
            name="tiny",
            source="upload",
            status="ready",
            path="datasets/tiny.npz",
        )
        dataset_id = str(row.id)
    assert run_dataset_pid(sessions, store, dataset_id) == "none"  # nothing requested
    with sessions() as session:
        crud.set_dataset_pid(session, dataset_id=dataset_id, pid=QUEUED)
    assert run_dataset_pid(sessions, store, dataset_id) == "failed"
    with sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        assert row is not None and row.pid is not None
        assert (row.pid["status"], row.pid["error"]) == (
            "failed",
            f"{INSTALL_HINT} (on the workers)",
        )
    assert run_dataset_pid(sessions, store, dataset_id) == "failed"  # finished: left alone
    assert run_dataset_pid(sessions, store, "00000000-0000-4000-8000-000000000000") == "missing"


def test_a_pid_of_raw_text_fails_naming_the_modality(tmp_path: Path) -> None:
    import numpy as np

    from worker.dataset_pid import PIDFailed, compute_pid

    path = tmp_path / "raw.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_text=np.array(["good", "bad"] * 20), x_v=rng.normal(size=(40, 2)).astype(np.float32),
             y=np.array([1, 0] * 20))  # fmt: skip
    with pytest.raises(PIDFailed, match="modality 'text' holds raw text"):
        compute_pid(path, clusters=None)
