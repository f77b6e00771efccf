"""After a Tune run: bring the database and the artifact store in line with Tune's results.

The callbacks (``worker.tune_callbacks``) write statuses and epochs as they arrive, but a write
that gave up during a long database outage, or a worker that died between a trial's end and its
status write (the trial then ends in a restored run that never runs it again), leaves a gap.
``sync_results`` walks Tune's ``ResultGrid`` (every trial of the experiment, restored ones
included): a finished trial's outputs are copied from its final checkpoint into the artifact
store and its row is ``succeeded``; an errored one's row is ``failed`` with its reason; epochs
the database lacks are written from the trial's own results (``Result.metrics_dataframe``, from
Tune's JSON/CSV loggers); a trial the scheduler stopped is ``stopped``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.session import SessionFactory
from infra.storage import Store
from worker.db_retry import write_with_retry
from worker.job_artifacts import store_trial_outputs
from worker.trainable import RESULT_JSON
from worker.tune_callbacks import failure_reason, metrics_of

log = logging.getLogger(__name__)

OPEN = ("pending", "running")


def reported_epochs(frame: Any) -> dict[int, dict[str, float]]:
    """epoch -> metrics of every epoch a trial reported (``Result.metrics_dataframe``: one row
    per report, config columns flattened as ``config/...``); an epoch reported twice (trained
    again after a restore, with the same results) counts once."""
    if frame is None or "epoch" not in frame:
        return {}
    epochs: dict[int, dict[str, float]] = {}
    for row in frame[frame["epoch"].notna()].to_dict("records"):
        metrics = metrics_of({k: v for k, v in row.items() if "/" not in str(k) and v == v})
        epochs.setdefault(int(row["epoch"]), metrics)
    return epochs


def backfill_epochs(
    sessions: SessionFactory, trial_id: str, reported: dict[int, dict[str, float]], retry_s: float
) -> int:
    """Write the reported epochs the database lacks; returns how many."""
    with sessions() as session:
        have = {m.epoch for m in crud.list_epoch_metrics(session, trial_id=trial_id)}
    missing = sorted(set(reported) - have)
    for epoch in missing:

        def insert(session: Session, e: int = epoch) -> None:
            crud.upsert_epoch_metrics(session, trial_id=trial_id, epoch=e, metrics=reported[e])

        write_with_retry(
            sessions, insert, what=f"epoch {epoch} of trial {trial_id}", max_wait_s=retry_s
        )
    return len(missing)


def sync_results(
    sessions: SessionFactory,
    store: Store,
    job_id: str,
    grid: Any,
    retry_s: float,
    *,
    completed: bool,
) -> None:
    """Outputs, statuses and epochs of every trial in ``grid`` (a ``tune.ResultGrid``).

    ``completed``: the run was neither cancelled nor stopped, so a trial that ended with neither
    a final result nor an error was stopped by the scheduler (ASHA).
    """
    with sessions() as session:
        rows = {t.id: t for t in crud.list_trials(session, job_id=job_id)}
    backfilled = 0
    for result in grid:
        if not result.config:  # stopped before it started (its references failed): no results
            continue
        trial_id = str(result.config["trial"]["trial_id"])
        row = rows.get(trial_id)
        if row is None:
            continue
        backfilled += backfill_epochs(
            sessions, trial_id, reported_epochs(result.metrics_dataframe), retry_s
        )
        status: dict[str, Any] | None = None
        if (result.metrics or {}).get("final") and result.checkpoint is not None:
            with result.checkpoint.as_directory() as final:
                store_trial_outputs(store, job_id, trial_id, Path(final))
                summary = json.loads((Path(final) / RESULT_JSON).read_text())
            if row.status != "succeeded":
                status = {
                    "status": "succeeded",
                    "metrics": summary["metrics"],
                    "best_epoch": int(summary["best_epoch"]) or None,
                }
        elif result.error is not None and row.status in OPEN:
            status = {"status": "failed", "failure_reason": failure_reason(result.error)}
        elif completed and row.status in OPEN:
            status = {"status": "stopped"}
        if status is not None:
            log.info(
                "job %s: trial %s %s (from Tune's results)", job_id, trial_id, status["status"]
            )

            def write(session: Session, t: str = trial_id, s: dict[str, Any] = status) -> None:
                crud.set_trial_status(session, trial_id=t, **s)

            write_with_retry(
                sessions, write, what=f"status of trial {trial_id}", max_wait_s=retry_s
            )
    if backfilled:
        log.warning("job %s: %d epoch row(s) written from Tune's results", job_id, backfilled)


def drop_experiment(path: str, filesystem: Any = None) -> None:
    """Delete a job's Tune experiment (a local folder or a URI; a path on ``filesystem``, a
    pyarrow FileSystem, when given); missing is fine."""
    import pyarrow.fs

    try:
        if filesystem is None:
            fs, inner = pyarrow.fs.FileSystem.from_uri(path)
        else:
            fs, inner = filesystem, path
        if fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound:
            fs.delete_dir(inner)
    except Exception:  # storage left behind never fails a job
        log.warning("could not delete the Tune experiment %s", path, exc_info=True)
