"""Resuming a job whose earlier run was interrupted (worker killed, database or broker lost).

Every trial keeps ``synib_core.fit``'s checkpoint in ``jobs/<job_id>/<trial_id>/ckpt`` of the
artifact store (``worker.trainable.CHECKPOINT_DIR``), written after every epoch before the
epoch is reported. A new run of the job therefore:
- adopts trials that finished although their final status never reached the database
  (``result.json`` and ``model.zip`` exist): ``succeeded`` with the saved metrics, not rerun;
- reruns the others; ``fit`` resumes each from its checkpoint (epoch k+1, same RNG state);
- afterwards backfills epoch rows the database missed (from the checkpoint's history), so no
  epoch is lost even when a write gave up during a long outage;
- once the job is finished, drops the checkpoints of its succeeded trials.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Trial
from infra.storage import ArtifactStore
from worker.db_ops import SessionFactory
from worker.db_retry import write_with_retry
from worker.job_artifacts import MODEL_ZIP, PREDICTIONS, trial_relpath
from worker.trainable import CHECKPOINT_DIR

log = logging.getLogger(__name__)

RESULT_JSON = "result.json"


def trial_dir(store: ArtifactStore, job_id: str, trial_id: str) -> Path:
    return store.resolve(trial_relpath(job_id, trial_id))


def finished_result(out_dir: Path) -> dict[str, Any] | None:
    """``result.json`` of a trial whose outputs are complete, else None."""
    if not all((out_dir / n).is_file() for n in (RESULT_JSON, MODEL_ZIP, PREDICTIONS)):
        return None
    try:
        result = json.loads((out_dir / RESULT_JSON).read_text())
        return result if isinstance(result, dict) and "metrics" in result else None
    except (OSError, ValueError):
        return None


def adopt_finished_trials(
    sessions: SessionFactory, store: ArtifactStore, job_id: str, rows: dict[str, Trial]
) -> list[str]:
    """Mark trials ``succeeded`` whose outputs are complete; returns their keys.

    ``rows`` maps trial_key -> row and is updated in place.
    """
    with sessions() as session:  # statuses now, not those of ``rows`` (read before the run)
        current = {t.trial_key: t for t in crud.list_trials(session, job_id=job_id)}
    adopted = []
    for key in rows:
        row = rows[key] = current.get(key, rows[key])
        if row.status == "succeeded":
            continue
        result = finished_result(trial_dir(store, job_id, row.id))
        if result is None:
            continue
        metrics = {k: v for k, v in result["metrics"].items() if isinstance(v, int | float)}
        best_epoch = int(result.get("best_epoch") or 0) or None

        def adopt(
            session: Session,
            t: str = row.id,
            m: dict[str, Any] = metrics,
            b: int | None = best_epoch,
        ) -> Trial | None:
            return crud.set_trial_status(
                session, trial_id=t, status="succeeded", metrics=m, best_epoch=b
            )

        updated = write_with_retry(sessions, adopt, what=f"adopting trial {row.id}")
        if updated is not None:
            rows[key] = updated
            adopted.append(key)
    if adopted:
        log.info("job %s: adopted %d finished trial(s): %s", job_id, len(adopted), adopted)
    return adopted


def checkpoint_history(ckpt_dir: Path) -> list[dict[str, float]]:
    """Per-epoch metrics saved in a trial's checkpoint (index i is epoch i + 1); [] if none."""
    from synib_core.training.state import CHECKPOINT_FILE

    path = ckpt_dir / CHECKPOINT_FILE
    if not path.is_file():
        return []
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        history = state["progress"]["history"]
    except Exception:  # a torn or foreign file: nothing to backfill from
        log.warning("unreadable checkpoint %s", path, exc_info=True)
        return []
    return [{k: float(v) for k, v in h.items()} for h in history]


def backfill_epochs(
    sessions: SessionFactory, store: ArtifactStore, job_id: str, retry_s: float
) -> int:
    """Insert the epoch rows the database lacks but the checkpoints hold; returns how many.

    Not for trials Tune stopped (ASHA): their task trains at most one epoch ahead of Tune, so
    the checkpoint may hold an epoch after the one the decision was made on; it is not part
    of the record."""
    with sessions() as session:
        trials = crud.list_trials(session, job_id=job_id)
        have = {
            t.id: {m.epoch for m in crud.list_epoch_metrics(session, trial_id=t.id)} for t in trials
        }
    added = 0
    for trial in trials:
        if trial.status == "stopped":
            continue
        history = checkpoint_history(trial_dir(store, job_id, trial.id) / CHECKPOINT_DIR)
        for epoch, metrics in enumerate(history, start=1):
            if epoch in have[trial.id]:
                continue

            def insert(
                session: Session, t: str = trial.id, e: int = epoch, m: dict[str, float] = metrics
            ) -> None:
                crud.upsert_epoch_metrics(session, trial_id=t, epoch=e, metrics=m)

            write_with_retry(sessions, insert, what=f"backfill epoch {epoch}", max_wait_s=retry_s)
            added += 1
    if added:
        log.warning("job %s: backfilled %d epoch row(s) from checkpoints", job_id, added)
    return added


def drop_checkpoints(store: ArtifactStore, job_id: str, trial_ids: list[str]) -> None:
    """Delete the checkpoints of these (finished) trials."""
    for trial_id in trial_ids:
        shutil.rmtree(trial_dir(store, job_id, trial_id) / CHECKPOINT_DIR, ignore_errors=True)
