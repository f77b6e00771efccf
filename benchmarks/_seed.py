"""Fast row seeding for the API benchmarks: users with tokens, a ready dataset, thousands of jobs
and a job with many trials x epochs x metrics, inserted in bulk (``insert(...)`` with a list of
parameter dicts: one executemany per table, not one ORM flush per row)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import EpochMetric, Job, Trial, new_id, utcnow
from infra.tokens import issue_token

# Status mix of the seeded job list (weights sum to 1).
STATUS_MIX = {"succeeded": 0.6, "failed": 0.1, "cancelled": 0.1, "queued": 0.15, "running": 0.05}
METRIC_NAMES = (
    "train_loss",
    "val_acc",
    "test_acc",
    "test_macro_f1",
    "test_ece",
    "synergy_acc",
    "redundant_acc",
    "unique_a_acc",
    "unique_b_acc",
    "epoch_seconds",
)
_CHUNK = 2000


def make_user(session: Session, name: str) -> tuple[str, str]:
    """(plain token, user id) of a new user ``name``."""
    issued = issue_token(session, user_name=name, token_name="bench")
    return issued.token, issued.user_id


def ready_dataset(session: Session, owner_id: str) -> str:
    """A ready built-in xor_pid dataset row (no file: the API does not read it); its id."""
    summary = {
        "modalities": [{"name": "a", "shape": [6000, 16]}, {"name": "b", "shape": [6000, 16]}],
        "num_classes": 2,
        "split_sizes": {"train": 1800, "val": 200, "test": 4000},
        "class_counts": {"0": 3000, "1": 3000},
        "group_counts": {},
        "has_oracle": False,
    }
    row = crud.create_dataset(
        session,
        owner_id=owner_id,
        name="xor_pid",
        source="builtin",
        builtin_name="xor_pid",
        params={"seed": 0},
        status="ready",
        path="datasets/bench.npz",
        sha256="0" * 64,
        size_bytes=1,
        summary=summary,
    )
    return row.id


def job_spec(dataset_id: str, epochs: int = 5) -> dict[str, Any]:
    """A valid JobCreate body: vanilla + synib over lambda {0.1, 1, 10}, 2 seeds (8 trials)."""
    return {
        "dataset_id": dataset_id,
        "methods": ["vanilla", "synib"],
        "config": {"hidden": 64, "fusion_hidden": 32, "lr": 1e-3},
        "sweep": {"lambda": {"type": "grid", "values": [0.1, 1.0, 10.0]}},
        "seeds": [0, 1],
        "epochs": epochs,
    }


def _report(job_id: str) -> dict[str, Any]:
    """A report-sized JSON blob (a few kB), as a finished job carries."""
    stat = {"mean": 0.9, "std": 0.01, "values": [0.89, 0.91]}
    methods = {
        m: {
            "best_config": {"lambda": 1.0},
            "metrics": {k: stat for k in METRIC_NAMES},
            "delta_vs_baseline": {k: {"delta": 0.01, "lo": 0.0, "hi": 0.02} for k in METRIC_NAMES},
            "sweep": [{"config": {"lambda": v}, "val_acc": stat} for v in (0.1, 1.0, 10.0)],
        }
        for m in ("vanilla", "synib")
    }
    return {"job_id": job_id, "baseline": "vanilla", "methods": methods}


def _insert_chunked(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(model), rows[start : start + _CHUNK])


def seed_jobs(session: Session, *, owner_id: str, dataset_id: str, n: int, seed: int = 0) -> None:
    """``n`` jobs of ``owner_id`` with the STATUS_MIX statuses, one second apart; succeeded
    ones carry a report and two succeeded trials (so the list computes ``best``)."""
    rng = random.Random(seed)
    statuses, weights = zip(*STATUS_MIX.items(), strict=True)
    start = utcnow() - timedelta(seconds=n)
    spec = job_spec(dataset_id)
    jobs: list[dict[str, Any]] = []
    trials: list[dict[str, Any]] = []
    for i in range(n):
        job_id, status = new_id(), rng.choices(statuses, weights)[0]
        created = start + timedelta(seconds=i)
        done = status in ("succeeded", "failed", "cancelled")
        jobs.append(
            {
                "id": job_id, "owner_id": owner_id, "dataset_id": dataset_id,
                "name": f"bench job {i}", "status": status, "spec": spec,
                "progress": 1.0 if done else 0.0, "trials_total": 8,
                "trials_done": 8 if done else 0,
                "report": _report(job_id) if status == "succeeded" else None,
                "created_at": created, "updated_at": created,
                "started_at": created if status != "queued" else None,
                "finished_at": created if done else None,
            }
        )  # fmt: skip
        if status == "succeeded":
            for method in ("vanilla", "synib"):
                trials.append(_trial_row(job_id, f"{method}|seed=0", method, rng.random()))
    _insert_chunked(session, Job, jobs)
    _insert_chunked(session, Trial, trials)
    session.commit()


def _trial_row(job_id: str, key: str, method: str, acc: float) -> dict[str, Any]:
    return {
        "id": new_id(), "job_id": job_id, "trial_key": key, "method": method, "seed": 0,
        "config": {"lambda": 1.0, "epochs": 100}, "status": "succeeded", "epochs_done": 100,
        "best_epoch": 100, "metrics": {name: acc for name in METRIC_NAMES},
    }  # fmt: skip


def seed_metrics_job(
    session: Session, *, owner_id: str, dataset_id: str, trials: int, epochs: int
) -> str:
    """A succeeded job with ``trials`` trials x ``epochs`` epoch rows x 10 metrics; its id."""
    job_id = new_id()
    now = utcnow()
    job = {
        "id": job_id, "owner_id": owner_id, "dataset_id": dataset_id, "name": "metrics job",
        "status": "succeeded", "spec": job_spec(dataset_id, epochs), "progress": 1.0,
        "trials_total": trials, "trials_done": trials, "created_at": now, "updated_at": now,
    }  # fmt: skip
    session.execute(insert(Job), [job])
    rng = random.Random(1)
    trial_rows = [
        _trial_row(job_id, f"synib|lambda={i}|seed=0", "synib", rng.random()) for i in range(trials)
    ]
    _insert_chunked(session, Trial, trial_rows)
    epochs_rows = [
        {
            "trial_id": t["id"],
            "epoch": e,
            "metrics": {name: rng.random() for name in METRIC_NAMES},
            "created_at": now,
        }
        for t in trial_rows
        for e in range(1, epochs + 1)
    ]
    _insert_chunked(session, EpochMetric, epochs_rows)
    session.commit()
    return job_id


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics after a bulk load (``VACUUM ANALYZE`` on PostgreSQL,
    ``ANALYZE`` on SQLite), as autovacuum would within a minute or two of steady use. Right
    after the load PostgreSQL still believes the jobs table nearly empty and plans a page of
    the job list as a sort of all the owner's rows (4-5 ms per page more, at 10,000 jobs)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE"))
