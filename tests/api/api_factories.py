"""Factories for the API tests: dataset files and rows, jobs inserted through crud; a recorder of
the statements an app sends."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset, Job

N = 40


def npz_bytes(**arrays: Any) -> bytes:
    """A valid dataset (x_a (N,4), x_b (N,3), binary y, split), with ``arrays`` overriding;
    an override of None removes that key."""
    rng = np.random.default_rng(0)
    base: dict[str, Any] = {
        "x_a": rng.normal(size=(N, 4)).astype(np.float32),
        "x_b": rng.normal(size=(N, 3)).astype(np.float32),
        "y": np.arange(N, dtype=np.int64) % 2,
        "split": np.repeat(np.array([0, 1, 2], dtype=np.int8), [28, 6, 6]),
    }
    base.update(arrays)
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in base.items() if v is not None})
    return buf.getvalue()


def add_ready_dataset(session: Session, owner_id: str, status: str = "ready") -> Dataset:
    return crud.create_dataset(
        session,
        owner_id=owner_id,
        name="xor",
        source="builtin",
        builtin_name="xor_spurious",
        params={"seed": 0},
        status=status,
        summary={"modalities": [{"name": "a", "shape": [N, 4]}], "num_classes": 2},
    )


def add_job(
    session: Session,
    owner_id: str,
    dataset_id: str,
    status: str = "queued",
    trials_total: int = 2,
) -> Job:
    """A job inserted through crud, moved to ``status`` through the worker's functions."""
    spec = {"methods": ["vanilla", "synib"], "seeds": [0], "dataset_id": dataset_id}
    job = crud.create_job(
        session,
        owner_id=owner_id,
        dataset_id=dataset_id,
        name="job",
        spec=spec,
        trials_total=trials_total,
    )
    if status == "queued":
        return job
    claimed = crud.claim_job(session, job_id=job.id, worker="w1")
    assert claimed is not None
    if status != "running":
        updated = crud.set_job_status(session, job_id=job.id, status=status)
        assert updated is not None
        return updated
    return claimed


def record_statements(app: Any) -> list[str]:
    """Every statement the app's asyncio engine (authentication, hot routes) sends from now,
    whitespace collapsed."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(app.state.async_engine.sync_engine, "before_cursor_execute", record)
    return statements
