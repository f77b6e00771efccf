"""``run_job``: claim a queued job, train its references and trials, store artifacts and report.

Idempotent: a job that is not ``queued`` is left alone (a redelivered message is harmless), and
the claim is an atomic ``queued -> running`` update. User faults (bad spec, bad knobs, a failed
dataset) end the job ``failed`` with the reason; our own errors are logged with context and end
it ``failed`` with a short reason; nothing raises out.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from infra.db import crud
from infra.db.models import Job
from infra.settings import Settings
from infra.storage import ArtifactStore
from synib_spec.jobs import JobSpec, parse_job_spec
from worker import db_ops
from worker.datasets import load_job_dataset
from worker.db_ops import SessionFactory
from worker.db_retry import is_connection_error, write_with_retry
from worker.faults import checked_fault_rules, trial_memory_mb
from worker.heartbeat import JobHeartbeat, owns_job
from worker.job_artifacts import (
    prediction_loader,
    store_report,
    store_trial_model,
    trial_out_dir,
)
from worker.job_report import TestSplit, TrialOutcome, build_report
from worker.job_resume import adopt_finished_trials, backfill_epochs, drop_checkpoints
from worker.ray_session import ray_for_job
from worker.trainable import TrialPayload
from worker.trial_plan import TrialSpec, base_config, plan_trials
from worker.tune_callbacks import CancelWatch
from worker.tune_runner import (
    JobCancelled,
    Resources,
    cancel_references,
    reference_summary,
    run_trials,
    start_references,
    wait_for_references,
)

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)

SUPERSEDED = "superseded"  # the job was given to another worker meanwhile: nothing written
INTERRUPTED = "interrupted"  # the database went away: the reconciler resumes the job later
TERMINAL_TRIALS = ("succeeded", "stopped")  # never rerun


@dataclass
class JobContext:
    """Everything one run of a job shares (``worker``: who holds it; "" = not fenced)."""

    job: Job
    settings: Settings
    sessions: SessionFactory
    store: ArtifactStore
    worker: str = ""

    def write(self, fn: Any, what: str) -> Any:
        """``fn(session)`` retried while the database is unreachable (``db_retry_max_s``)."""
        return write_with_retry(
            self.sessions,
            fn,
            what=f"{what} of job {self.job.id}",
            max_wait_s=self.settings.db_retry_max_s,
        )


def finish(ctx: JobContext, status: str, reason: str | None = None) -> str:
    """Set the final status (a cancel that arrived meanwhile wins over success).

    Writes nothing and returns ``superseded`` when this worker no longer holds the job.
    """
    return str(ctx.write(lambda session: _finish(ctx, session, status, reason), "final status"))


def _finish(ctx: JobContext, session: Any, status: str, reason: str | None) -> str:
    if ctx.worker and not owns_job(session, job_id=ctx.job.id, worker=ctx.worker):
        session.rollback()
        log.warning("job %s: held by another worker now; leaving it alone", ctx.job.id)
        return SUPERSEDED
    db_ops.close_open_trials(
        session,
        job_id=ctx.job.id,
        status="cancelled" if status == "cancelled" else "failed",
        reason=None if status == "cancelled" else db_ops.unfinished_reason(reason),
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


def register_trials(ctx: JobContext, plan: list[TrialSpec]) -> dict[str, Any]:
    """Create (or find) the trial rows; returns trial_key -> row."""
    return dict(ctx.write(lambda session: _register_trials(ctx, session, plan), "trial rows"))


def _register_trials(ctx: JobContext, session: Any, plan: list[TrialSpec]) -> dict[str, Any]:
    rows = {}
    for t in plan:
        rows[t.key] = crud.upsert_trial(
            session,
            job_id=ctx.job.id,
            trial_key=t.key,
            method=t.method,
            seed=t.seed,
            config=t.config,
        )
    db_ops.set_trials_total(session, job_id=ctx.job.id, trials_total=len(plan))
    return rows


def payloads_for(
    ctx: JobContext, plan: list[TrialSpec], rows: dict[str, Any], resources: Resources
) -> list[TrialPayload]:
    """Payloads of the trials still to run (a rerun skips the succeeded ones)."""
    return [
        TrialPayload(
            key=t.key,
            job_id=ctx.job.id,
            trial_id=rows[t.key].id,
            method=t.method,
            seed=t.seed,
            knobs=t.config,
            cpus=resources.threads,
            ray_cpus=resources.cpus,
            gpus=resources.gpus,
            out_dir=str(trial_out_dir(ctx.store, ctx.job.id, rows[t.key].id)),
            memory_mb=trial_memory_mb(ctx.job.spec, ctx.settings.trial_memory_mb),
            faults=checked_fault_rules(ctx.settings.fault_injection),
        )
        for t in plan
        if rows[t.key].status not in TERMINAL_TRIALS
    ]


def train_job(
    ctx: JobContext, data: MultimodalData, job_spec: JobSpec, plan: list[TrialSpec]
) -> tuple[bool, Any]:
    """The trials under Ray, the references beside them; returns (cancelled, references per
    seed). The references' accuracies are stored on the job once they are in."""
    spec = ctx.job.spec
    resources = Resources.from_spec(spec)
    rows = register_trials(ctx, plan)
    adopt_finished_trials(ctx.sessions, ctx.store, ctx.job.id, rows)
    payloads = payloads_for(ctx, plan, rows, resources)
    watch = CancelWatch(ctx.settings.database_url, ctx.job.id, worker=ctx.worker or None)
    seeds = sorted({t.seed for t in plan})
    storage = ctx.store.resolve(f"jobs/{ctx.job.id}/_tune")
    shutil.rmtree(storage, ignore_errors=True)  # a killed run's Tune experiment: not reused
    with ray_for_job(ctx.settings):
        import ray

        if not ctx.settings.ray_address:  # a cluster may still grow (autoscaling): no check
            resources.check_fits(ray.cluster_resources())
        data_ref = ray.put(data)  # one copy in Ray's object store for references and trials
        pending = start_references(base_config(job_spec), data_ref, seeds, resources)
        try:
            if not resources.references_beside_trials:  # GPU or multi-thread trials
                wait_for_references(pending, watch)
            if payloads:
                run_trials(
                    spec=spec,
                    payloads=payloads,
                    data_ref=data_ref,
                    references=pending,
                    resources=resources,
                    watch=watch,
                    storage_dir=storage,
                    retry_s=ctx.settings.db_retry_max_s,
                )
            t0 = time.perf_counter()
            refs = wait_for_references(pending, watch)
        except JobCancelled:
            return True, {}
        finally:
            cancel_references(pending)
            shutil.rmtree(storage, ignore_errors=True)
    log.info("job %s: references of %d seed(s) ready (waited %.2f s after the trials)",
             ctx.job.id, len(seeds), time.perf_counter() - t0)  # fmt: skip
    if not watch.superseded:
        summary = reference_summary(refs, data.y[data.split == 2])
        ctx.write(
            lambda s: crud.set_job_references(s, job_id=ctx.job.id, references=summary),
            "references",
        )
        adopt_finished_trials(ctx.sessions, ctx.store, ctx.job.id, rows)
        backfill_epochs(ctx.sessions, ctx.store, ctx.job.id, ctx.settings.db_retry_max_s)
    return watch.cancelled or watch.check(), refs


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


def complete_job(ctx: JobContext, data: MultimodalData, plan: list[TrialSpec], refs: Any) -> str:
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
    report = build_report(
        job_id=ctx.job.id,
        spec=ctx.job.spec,
        trials=trials,
        test=TestSplit(y=data.y[test], group=group, references=refs),
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
    status = finish(ctx, "succeeded")
    if status == "succeeded":
        drop_checkpoints(ctx.store, ctx.job.id, list(rows))
    return status


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
    return complete_job(ctx, data, plan, refs)


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
    """Run a claimed job, classifying what goes wrong; never raises."""
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
            log.error("job %s: database unavailable; the reconciler will resume it", job_id)
            return INTERRUPTED
        log.exception("job %s: internal error", job_id)
        reason = f"internal error ({type(exc).__name__}); see the worker log"
        try:
            status = finish(ctx, "failed", reason)
        except Exception:
            log.exception("job %s: could not record the failure", job_id)
            return INTERRUPTED
    return status
