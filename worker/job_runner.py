"""``run_job``: claim a queued job, train its references and trials, store artifacts and report.

Idempotent: a job that is not ``queued`` is left alone (a redelivered message is harmless), and
the claim is an atomic ``queued -> running`` update. User faults (bad spec, bad knobs, a failed
dataset) end the job ``failed`` with the reason; our own errors are logged with context and end
it ``failed`` with a short reason; nothing raises out.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from infra.db import crud
from infra.db.session import SessionFactory
from infra.settings import Settings
from infra.storage import ArtifactStore
from synib_spec.jobs import JobSpec, parse_job_spec
from worker.datasets import load_job_dataset
from worker.db_retry import is_connection_error
from worker.heartbeat import JobHeartbeat
from worker.job_artifacts import prediction_loader, store_report, store_trial_model
from worker.job_context import JobContext
from worker.job_report import TestSplit, TrialOutcome, build_report, pid_states
from worker.job_trials import drop_job_experiment, train_job
from worker.trial_plan import TrialSpec, plan_trials

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)

SUPERSEDED = "superseded"  # the job was given to another worker meanwhile: nothing written
INTERRUPTED = "interrupted"  # the database went away: the housekeeping resumes the job later
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def finish(ctx: JobContext, status: str, reason: str | None = None) -> str:
    """Set the final status (a cancel that arrived meanwhile wins over success).

    Writes nothing and returns ``superseded`` when this worker no longer holds the job.
    """
    return str(ctx.write(lambda session: _finish(ctx, session, status, reason), "final status"))


def _finish(ctx: JobContext, session: Any, status: str, reason: str | None) -> str:
    if ctx.worker and not crud.owns_job(session, job_id=ctx.job.id, worker=ctx.worker):
        session.rollback()
        log.warning("job %s: held by another worker now; leaving it alone", ctx.job.id)
        return SUPERSEDED
    crud.close_open_trials(
        session,
        job_id=ctx.job.id,
        status="cancelled" if status == "cancelled" else "failed",
        reason=None if status == "cancelled" else crud.unfinished_reason(reason),
    )
    done = crud.set_job_status(
        session, job_id=ctx.job.id, status=status, failure_reason=reason, only_from=("running",)
    )
    if done is None:  # cancelling (or changed under us): a requested cancel is honoured
        crud.set_job_status(
            session, job_id=ctx.job.id, status="cancelled", only_from=("cancelling",)
        )
        return "cancelled"
    return status


def outcomes(ctx: JobContext, plan: list[TrialSpec]) -> list[TrialOutcome]:
    sweep = {t.key: t.sweep_values for t in plan}
    with ctx.sessions() as session:
        rows = crud.list_trials(session, job_id=ctx.job.id)
    return [
        TrialOutcome(
            trial_id=r.id,
            key=r.trial_key,
            method=r.method,
            seed=r.seed,
            status=r.status,
            sweep_values=sweep.get(r.trial_key, {}),
            metrics={k: float(v) for k, v in (r.metrics or {}).items() if _is_number(v)},
        )
        for r in rows
        if r.trial_key in sweep
    ]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def all_failed_reason(trials: list[TrialOutcome]) -> str | None:
    """The job's failure reason when every trial failed, else None."""
    if not trials or any(t.status != "failed" for t in trials):
        return None
    return f"all {len(trials)} trials failed"


def complete_job(
    ctx: JobContext, data: MultimodalData, spec: JobSpec, plan: list[TrialSpec], refs: Any
) -> str:
    """Artifacts and report after the trials ran; the final status."""
    trials = outcomes(ctx, plan)
    reason = all_failed_reason(trials)
    if reason is not None:
        with ctx.sessions() as session:
            first = crud.list_trials(session, job_id=ctx.job.id, status="failed")
        detail = first[0].failure_reason if first else None
        return finish(ctx, "failed", f"{reason} (first: {detail})" if detail else reason)
    t0 = time.perf_counter()
    artifacts: dict[str, str] = {}
    with ctx.sessions() as session:
        rows = {r.id: r for r in crud.list_trials(session, job_id=ctx.job.id, status="succeeded")}
    for row in rows.values():
        artifact_id = store_trial_model(ctx.sessions, ctx.store, ctx.job, row)
        if artifact_id is not None:
            artifacts[row.id] = artifact_id
    t1 = time.perf_counter()
    test = data.split == 2
    group = None if data.group is None else np.asarray(data.group)[test]
    with ctx.sessions() as session:
        refs_json = (crud.get_job(session, job_id=ctx.job.id) or ctx.job).references or {}
    y_test = data.y[test]
    states, clusters, pid_note = pid_states({m: x[test] for m, x in data.x.items()}, y_test)
    report = build_report(
        job_id=ctx.job.id,
        spec=spec,
        trials=trials,
        test=TestSplit(
            y=y_test,
            group=group,
            references=refs,
            n_val=int(np.sum(data.split == 1)),
            pid_states=states,
            pid_clusters=clusters,
            pid_note=pid_note,
        ),
        preds=prediction_loader(ctx.store, ctx.job.id),
        artifacts=artifacts,
        references=refs_json,
    )
    t2 = time.perf_counter()
    store_report(ctx.sessions, ctx.store, ctx.job, report)
    ctx.write(lambda s: crud.set_job_report(s, job_id=ctx.job.id, report=report), "report")
    log.info(
        "job %s: %d model artifact(s) in %.2f s, report computed in %.2f s, stored in %.2f s",
        ctx.job.id, len(artifacts), t1 - t0, t2 - t1, time.perf_counter() - t2,
    )  # fmt: skip
    return finish(ctx, "succeeded")


def execute(ctx: JobContext) -> str:
    """Run a claimed job to its final status (raises for the caller to classify)."""
    t0 = time.perf_counter()
    data = load_job_dataset(ctx.sessions, ctx.store, ctx.job.dataset_id)
    log.info("job %s: dataset loaded in %.2f s", ctx.job.id, time.perf_counter() - t0)
    job_spec = parse_job_spec(ctx.job.spec)
    plan = plan_trials(job_spec, ctx.job.id)
    cancelled, refs = train_job(ctx, data, job_spec, plan)
    if cancelled:
        return finish(ctx, "cancelled")
    return complete_job(ctx, data, job_spec, plan, refs)


def run_job(
    job_id: str, *, settings: Settings, sessions: SessionFactory, worker: str, task_id: str | None
) -> str:
    """The body of the ``synib.run_job`` task; returns the job's final status or ``skipped``.

    Two deliveries of the same job at once run it once: the claim is an atomic, row-locked
    ``queued -> running`` update. While the job runs, a heartbeat thread renews its lease.
    """
    with sessions() as session:
        job = crud.claim_job(session, job_id=job_id, worker=worker)
        if job is None:
            log.info("run_job %s: not queued (or missing), nothing to do", job_id)
            return "skipped"
        if task_id:
            crud.set_job_task_id(session, job_id=job_id, task_id=task_id)
    ctx = JobContext(job, settings, sessions, ArtifactStore(settings.artifact_root), worker)
    with JobHeartbeat(sessions, job_id, worker, settings.heartbeat_interval_s):
        status = run_claimed(ctx)
    log.info("job %s: %s", job_id, status)
    return status


def run_claimed(ctx: JobContext) -> str:
    """Run a claimed job, classifying what goes wrong; never raises. Once the job has its final
    status its Tune experiment is deleted (a later "rerun failed trials" starts a fresh one)."""
    status = _run_classified(ctx)
    if status in FINAL_STATUSES:
        drop_job_experiment(ctx)
    return status


def _run_classified(ctx: JobContext) -> str:
    job_id = ctx.job.id
    try:
        status = execute(ctx)
    except ValueError as exc:  # user faults: spec, knobs, dataset (all ValueError subclasses)
        log.info("job %s failed: %s", job_id, exc)
        status = finish(ctx, "failed", str(exc))
    except SoftTimeLimitExceeded:
        log.warning("job %s: time limit exceeded", job_id)
        status = finish(ctx, "failed", "the job exceeded the worker's time limit")
    except Exception as exc:
        if is_connection_error(exc):
            log.error("job %s: database unavailable; the housekeeping will resume it", job_id)
            return INTERRUPTED
        log.exception("job %s: internal error", job_id)
        reason = f"internal error ({type(exc).__name__}); see the worker log"
        try:
            status = finish(ctx, "failed", reason)
        except Exception:
            log.exception("job %s: could not record the failure", job_id)
            return INTERRUPTED
    return status
