"""Trials of a job, their per-epoch metrics, and CSV/JSON exports."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from fastapi import APIRouter, Response

from api.deps import CurrentUser, PathId, SessionDep
from api.errors import AUTH_ERRORS, NOT_FOUND, not_found
from api.routes.jobs import owned_job
from api.schemas.trials import EpochMetricsPublic, TrialMetricsPublic, TrialPublic, TrialsPublic
from infra.db import crud

router = APIRouter(tags=["trials"], responses=AUTH_ERRORS)

_CSV_FIXED = [
    "id",
    "trial_key",
    "method",
    "seed",
    "status",
    "epochs_done",
    "best_epoch",
    "failure_reason",
]


@router.get("/jobs/{job_id}/trials", response_model=TrialsPublic, responses=NOT_FOUND)
def list_job_trials(job_id: PathId, user: CurrentUser, session: SessionDep) -> TrialsPublic:
    owned_job(session, job_id, user.id)
    trials = [TrialPublic.model_validate(t) for t in crud.list_trials(session, job_id=job_id)]
    return TrialsPublic(data=trials, count=len(trials))


@router.get("/trials/{trial_id}", response_model=TrialPublic, responses=NOT_FOUND)
def read_trial(trial_id: PathId, user: CurrentUser, session: SessionDep) -> TrialPublic:
    trial = crud.get_trial(session, trial_id=trial_id, owner_id=user.id)
    if trial is None:
        raise not_found("trial")
    return TrialPublic.model_validate(trial)


@router.get("/trials/{trial_id}/metrics", response_model=TrialMetricsPublic, responses=NOT_FOUND)
def read_trial_metrics(
    trial_id: PathId, user: CurrentUser, session: SessionDep
) -> TrialMetricsPublic:
    if crud.get_trial(session, trial_id=trial_id, owner_id=user.id) is None:
        raise not_found("trial")
    rows = crud.list_epoch_metrics(session, trial_id=trial_id)
    return TrialMetricsPublic(data=[EpochMetricsPublic.model_validate(r) for r in rows])


@router.get(
    "/jobs/{job_id}/metrics",
    response_model=dict[str, list[EpochMetricsPublic]],
    responses=NOT_FOUND,
)
def read_job_metrics(job_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    """``{trial_id: [{epoch, metrics}]}`` for every trial of the job."""
    owned_job(session, job_id, user.id)
    rows = crud.list_job_epoch_metrics(session, job_id=job_id)
    return Response(epoch_metrics_json(rows), media_type="application/json")


def finite_json(metrics: str) -> str:
    """A stored metrics object (JSON text) with NaN / Infinity as null, as the other
    endpoints answer them (SQLite can store them; PostgreSQL's json type cannot)."""
    if "NaN" not in metrics and "Infinity" not in metrics:
        return metrics
    values = json.loads(metrics)
    return json.dumps(
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
    )


def epoch_metrics_json(rows: list[tuple[str, int, str]]) -> str:
    """``{trial_id: [{"epoch": e, "metrics": {...}}]}`` as JSON text from rows ordered by trial
    and epoch; each stored metrics object is spliced in as it is, not decoded and re-encoded
    (5000 rows: about 15 ms instead of 90)."""
    groups: list[str] = []
    entries: list[str] = []
    current: str | None = None
    for trial_id, epoch, metrics in rows:
        if trial_id != current:
            if current is not None:
                groups.append(f"{json.dumps(current)}:[{','.join(entries)}]")
            current, entries = trial_id, []
        entries.append(f'{{"epoch":{epoch},"metrics":{finite_json(metrics)}}}')
    if current is not None:
        groups.append(f"{json.dumps(current)}:[{','.join(entries)}]")
    return "{" + ",".join(groups) + "}"


def trials_csv(trials: list[TrialPublic]) -> str:
    """One row per trial: fixed columns, then ``config.<knob>`` and metric columns (sorted)."""
    knobs = sorted({k for t in trials for k in t.config})
    metrics = sorted({k for t in trials for k in t.metrics})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*_CSV_FIXED, *(f"config.{k}" for k in knobs), *metrics])
    for t in trials:
        fixed = [
            t.id,
            t.trial_key,
            t.method,
            t.seed,
            t.status,
            t.epochs_done,
            t.best_epoch,
            t.failure_reason,
        ]
        row: list[Any] = [
            *fixed,
            *(t.config.get(k) for k in knobs),
            *(t.metrics.get(m) for m in metrics),
        ]
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/jobs/{job_id}/trials.csv", response_class=Response, responses=NOT_FOUND)
def export_trials_csv(job_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    owned_job(session, job_id, user.id)
    trials = [TrialPublic.model_validate(t) for t in crud.list_trials(session, job_id=job_id)]
    return Response(
        trials_csv(trials), media_type="text/csv", headers=_attachment(f"{job_id}-trials.csv")
    )


@router.get("/jobs/{job_id}/trials.json", response_class=Response, responses=NOT_FOUND)
def export_trials_json(job_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    """A JSON array of TrialPublic objects, as a download."""
    owned_job(session, job_id, user.id)
    trials = [TrialPublic.model_validate(t) for t in crud.list_trials(session, job_id=job_id)]
    body = json.dumps([t.model_dump(mode="json") for t in trials], indent=1)
    return Response(
        body, media_type="application/json", headers=_attachment(f"{job_id}-trials.json")
    )
