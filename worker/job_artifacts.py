"""Trial outputs in the artifact store: copy a finished trial's outputs out of its final Tune
checkpoint, register its zipped model bundle with its sha256, store the report, and read back
the per-sample test predictions.

Layout under the store root: ``jobs/<job_id>/<trial_id>/`` holds what the trial wrote:
``model.zip`` (the bundle, loadable with ``synib_core.load``), ``test_pred.npy`` and
``result.json``; ``jobs/<job_id>/report.json`` is the report. Each write goes through a
temporary file and is retried on a storage error (``worker.storage_retry``); after the last try
the job fails with the store's one-line reason.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from infra.db import crud
from infra.db.models import Job, Trial
from infra.db.session import SessionFactory
from infra.storage import Store, sha256_file, storage_errors
from worker.storage_retry import with_storage_retry
from worker.trainable import MODEL_ZIP, OUTPUTS, PREDICTIONS


def trial_relpath(job_id: str, trial_id: str, name: str = "") -> str:
    base = f"jobs/{job_id}/{trial_id}"
    return f"{base}/{name}" if name else base


def artifact_name(trial_key: str) -> str:
    """``synib|lambda=1|seed=0`` -> ``model_synib_lambda-1_seed-0.zip`` (safe as a file name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", trial_key.replace("|", "_").replace("=", "-"))
    return f"model_{safe}.zip"


def store_trial_outputs(store: Store, job_id: str, trial_id: str, source: Path) -> None:
    """Copy the trial's outputs (``worker.trainable.OUTPUTS``) from ``source`` (its final
    checkpoint) into the store, each file moved into place whole; ones already there stay.
    A storage error is retried (``worker.storage_retry``)."""
    for name in OUTPUTS:
        relative = trial_relpath(job_id, trial_id, name)
        copy = partial(_copy_into_store, store, source / name, relative)
        with_storage_retry(copy, f"job {job_id}: {name}")


def _copy_into_store(store: Store, source: Path, relative: str) -> None:
    """Copy ``source`` into the store at ``relative`` through a temporary file (gone after),
    unless a file is there already."""
    if store.exists(relative):
        return
    tmp = store.new_temp_file(suffix=Path(relative).suffix)
    try:
        with storage_errors("copying a trial's outputs"):
            shutil.copyfile(source, tmp)
        store.put(tmp, relative)
    finally:
        tmp.unlink(missing_ok=True)


def store_trial_model(sessions: SessionFactory, store: Store, job: Job, trial: Trial) -> str | None:
    """Register the trial's model zip (once); returns the artifact id, None without a bundle."""
    with sessions() as session:
        existing = crud.model_artifact_of(session, trial_id=trial.id)
        if existing is not None:
            return existing.id
    relative = trial_relpath(job.id, trial.id, MODEL_ZIP)
    try:
        sha, size = with_storage_retry(lambda: store.sha256(relative), f"job {job.id}: {MODEL_ZIP}")
    except FileNotFoundError:
        return None
    with sessions() as session:
        row = crud.add_artifact(
            session,
            owner_id=job.owner_id,
            job_id=job.id,
            trial_id=trial.id,
            kind="model",
            name=artifact_name(trial.trial_key),
            path=relative,
            sha256=sha,
            size_bytes=size,
        )
    return row.id


def store_report(sessions: SessionFactory, store: Store, job: Job, report: dict[str, Any]) -> str:
    """Write ``jobs/<job_id>/report.json`` and register (or refresh) it as a report artifact."""
    relative = f"jobs/{job.id}/report.json"
    text = json.dumps(report, indent=2, sort_keys=True)
    sha, size = with_storage_retry(
        lambda: _write_into_store(store, text, relative), f"job {job.id}: report"
    )
    with sessions() as session:
        existing = crud.report_artifact_of(session, job_id=job.id)
        if existing is not None:
            crud.replace_artifact_file(session, artifact=existing, sha256=sha, size_bytes=size)
            return existing.id
        row = crud.add_artifact(
            session,
            owner_id=job.owner_id,
            job_id=job.id,
            kind="report",
            name="report.json",
            path=relative,
            sha256=sha,
            size_bytes=size,
        )
        return row.id


def _write_into_store(store: Store, text: str, relative: str) -> tuple[str, int]:
    """Write ``text`` into the store at ``relative`` through a temporary file (gone after);
    (sha256, size) of what was stored."""
    tmp = store.new_temp_file(suffix=Path(relative).suffix)
    try:
        with storage_errors("writing a report"):
            tmp.write_text(text)
        stored = sha256_file(tmp)
        store.put(tmp, relative)
        return stored
    finally:
        tmp.unlink(missing_ok=True)


def prediction_loader(store: Store, job_id: str) -> Any:
    """trial_id -> (N_test,) int64 test predictions saved by the trial, or None."""

    def load(trial_id: str) -> np.ndarray | None:
        relative = trial_relpath(job_id, trial_id, PREDICTIONS)
        try:
            path = with_storage_retry(lambda: store.local_copy(relative), f"job {job_id}")
        except FileNotFoundError:
            return None
        return np.load(path)

    return load
