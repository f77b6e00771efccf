"""``run_job``: claim a queued job (the fair queue's first), train its references and trials,
store artifacts and report.

Idempotent: only a ``queued`` job is claimed (a redelivered message is harmless), and the claim
is an atomic ``queued -> running`` update. User faults (bad spec, bad knobs, a failed
dataset) end the job ``failed`` with the reason; our own errors are logged with context and end
it ``failed`` with a short reason; nothing raises out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from infra.db import crud
from infra.db.models import Job, JobStatus
from infra.db.session import SessionFactory
from infra.object_store import open_store
from infra.settings import Settings
from synib_spec.jobs import JobSpec, parse_job_spec
from worker.datasets import load_job_dataset
from worker.db_retry import is_connection_error
from worker.features import prepare_backbones
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
    data, backbones = prepare_backbones(ctx, data, dict(job_spec.backbones))
    plan = plan_trials(job_spec, ctx.job.id)
    cancelled, refs = train_job(ctx, data, job_spec, plan, backbones)
    if cancelled:
        return finish(ctx, "cancelled")
    return complete_job(ctx, data, job_spec, plan, refs)


@dataclass(frozen=True)
class Claim:
    """What a ``synib.run_job`` delivery got: ``job``, the queued job it claimed by the fair
    rule (None: no queued job may start now), and whether the message's own job still waits
    in the queue with this message as its current one (then the message goes back)."""

    job: Job | None
    message_job_waits: bool


def claim_fair_job(
    message_job_id: str,
    *,
    settings: Settings,
    sessions: SessionFactory,
    worker: str,
    task_id: str | None,
) -> Claim:
    """Claim, for ``worker``, the queued job the fair rule picks (docs/ARCHITECTURE.md, "Fair
    scheduling"), which need not be the message's own job. The claim is an atomic, row-locked
    ``queued -> running`` update: two deliveries at once never claim one job twice."""
    with sessions() as session:
        job = crud.claim_next_job(
            session, worker=worker, max_running=settings.max_running_jobs_per_user
        )
        if job is not None and task_id:
            crud.set_job_task_id(session, job_id=job.id, task_id=task_id)
        own = None if job is not None and job.id == message_job_id else message_job_id
        waits = own is not None and _waits_for_this_message(session, own, task_id)
    if job is not None and own is not None:
        log.info("run_job %s: job %s goes first (fair order)", message_job_id, job.id)
    return Claim(job, waits)


def _waits_for_this_message(session: Any, job_id: str, task_id: str | None) -> bool:
    """Whether the job is queued and this message is its current one: the id its row holds
    (a job sent without one counts every message as current)."""
    job = crud.get_job(session, job_id=job_id)
    if job is None or job.status != JobStatus.QUEUED:
        return False
    return job.task_id is None or job.task_id == task_id


def run_job(
    job_id: str, *, settings: Settings, sessions: SessionFactory, worker: str, task_id: str | None
) -> str:
    """Claim the fair queue's first job (``claim_fair_job``) and run it: its final status, or
    ``skipped`` when no queued job may start now (a redelivered message finds its job taken)."""
    claim = claim_fair_job(
        job_id, settings=settings, sessions=sessions, worker=worker, task_id=task_id
    )
    if claim.job is None:
        log.info("run_job %s: no queued job may start now, nothing to do", job_id)
        return "skipped"
    return run_claimed_job(claim.job, settings=settings, sessions=sessions, worker=worker)


def run_claimed_job(job: Job, *, settings: Settings, sessions: SessionFactory, worker: str) -> str:
    """Run a job this worker claimed to its final status, renewing its lease meanwhile."""
    ctx = JobContext(job, settings, sessions, open_store(settings), worker)
    with JobHeartbeat(sessions, job.id, worker, settings.heartbeat_interval_s):
        status = run_claimed(ctx)
    log.info("job %s: %s", job.id, status)
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
