"""A job's trials: their rows, the unimodal references, and the Tune runs that train them.

``train_job`` registers a row per planned trial, starts the references (one Ray task per seed),
and then:
1. when the job's Tune experiment can be restored (its worker died, or the database went away,
   mid-run), resumes it with ``Tuner.restore``: finished trials are not run again, unfinished
   ones go on from their last checkpoint, failed ones stay failed;
2. runs a fresh experiment over the trials still open (a new job: all of them; after "rerun
   failed trials": the failed ones, reset to pending by the API).
After each run ``sync_results`` brings the database and the artifact store in line with Tune's
results. The experiment is deleted once the job has its final status (``drop_experiment``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from infra.db import crud
from infra.object_store import tune_storage
from synib_spec.jobs import JobSpec
from worker.job_context import JobContext
from worker.limits import trial_memory_mb
from worker.ray_session import ray_for_job
from worker.references import (
    JobCancelled,
    ReferenceCheck,
    cancel_references,
    reference_summary,
    references_beside_trials,
    start_references,
    wait_for_references,
)
from worker.trainable import TrialPayload
from worker.trial_plan import TrialSpec, base_config
from worker.tune_callbacks import CancelWatch, TrialRecorder, live_hooks
from worker.tune_results import drop_experiment, sync_results
from worker.tune_runner import (
    check_fits,
    experiment_path,
    fit_off_main_thread,
    make_trainable,
    new_tuner,
    restored_tuner,
)

if TYPE_CHECKING:
    from synib_core.backbones import EncoderChoice
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)

OPEN_TRIALS = ("pending", "running")  # the trials a run trains


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
    crud.set_trials_total(session, job_id=ctx.job.id, trials_total=len(plan))
    return rows


def open_payloads(
    ctx: JobContext, spec: JobSpec, plan: list[TrialSpec], backbones: dict[str, Any] | None = None
) -> list[TrialPayload]:
    """Payloads of the planned trials whose rows are still open (pending or running);
    ``backbones``: modality -> ``EncoderChoice.to_json()`` (worker.features)."""
    with ctx.sessions() as session:
        rows = {t.trial_key: t for t in crud.list_trials(session, job_id=ctx.job.id)}
    memory_mb = trial_memory_mb(spec, ctx.settings.trial_memory_mb)
    return [
        TrialPayload(
            key=t.key,
            job_id=ctx.job.id,
            trial_id=rows[t.key].id,
            method=t.method,
            seed=t.seed,
            knobs=t.config,
            threads=spec.resources.threads,
            memory_mb=memory_mb,
            backbones=dict(backbones or {}),
        )
        for t in plan
        if t.key in rows and rows[t.key].status in OPEN_TRIALS
    ]


def epochs_recorded(ctx: JobContext) -> dict[str, int]:
    """trial id -> the epochs the database holds for it."""
    with ctx.sessions() as session:
        return {t.id: int(t.epochs_done or 0) for t in crud.list_trials(session, job_id=ctx.job.id)}


def run_trials(
    ctx: JobContext,
    spec: JobSpec,
    plan: list[TrialSpec],
    trainable: Any,
    hooks: tuple[CancelWatch, TrialRecorder],
    references: ReferenceCheck,
    backbones: dict[str, Any] | None = None,
) -> None:
    """Resume the job's interrupted experiment if there is one, then run the trials still open
    in a fresh one (both blocking until done, cancelled or stopped)."""
    from ray import tune

    watch, recorder = hooks
    storage, filesystem = tune_storage(ctx.settings)
    path = experiment_path(storage, ctx.job.id)
    retry_s = ctx.settings.db_retry_max_s
    if tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        log.info("job %s: resuming its Tune experiment %s", ctx.job.id, path)
        recorder.resumed_epochs = epochs_recorded(ctx)
        restored = restored_tuner(path, trainable, filesystem)
        grid = fit_off_main_thread(restored, watch, references)
        recorder.resumed_epochs = {}
        if watch.superseded:
            return
        done = not (watch.cancelled or watch.interrupted)
        sync_results(ctx.sessions, ctx.store, ctx.job.id, grid, retry_s, completed=done)
        if not done:
            return
    # A finished experiment, or one that never got far enough to restore.
    drop_experiment(path, filesystem)
    payloads = open_payloads(ctx, spec, plan, backbones)
    if not payloads:
        return
    tuner = new_tuner(
        spec=spec,
        payloads=payloads,
        trainable=trainable,
        storage=storage,
        filesystem=filesystem,
        watch=watch,
        recorder=recorder,
        checkpoints_kept=ctx.settings.tune_checkpoints_kept,
    )
    grid = fit_off_main_thread(tuner, watch, references)
    if not watch.superseded:
        done = not (watch.cancelled or watch.interrupted)
        sync_results(ctx.sessions, ctx.store, ctx.job.id, grid, retry_s, completed=done)


def train_job(
    ctx: JobContext,
    data: MultimodalData,
    spec: JobSpec,
    plan: list[TrialSpec],
    backbones: Mapping[str, EncoderChoice] | None = None,
) -> tuple[bool, Any]:
    """The trials under Ray Tune, the references beside them; returns (cancelled, references
    per seed). The references' accuracies are stored on the job once they are in.
    ``backbones``: modality -> ``EncoderChoice`` (``worker.features.prepare_backbones``)."""
    choices = {m: c.to_json() for m, c in (backbones or {}).items()}
    register_trials(ctx, plan)
    watch = CancelWatch(ctx.settings.database_url, ctx.job.id, worker=ctx.worker or None)
    recorder = TrialRecorder(ctx.settings.database_url, watch, retry_s=ctx.settings.db_retry_max_s)
    seeds = sorted({t.seed for t in plan})
    resources = spec.resources
    with ray_for_job(ctx.settings), live_hooks(watch, recorder):
        import ray

        if not ctx.settings.ray_address:  # a cluster may still grow (autoscaling): no check
            check_fits(resources, ray.cluster_resources())
        data_ref = ray.put(data)  # one copy in Ray's object store for references and trials
        pending = start_references(base_config(spec), data_ref, seeds, resources, choices)
        try:
            if not references_beside_trials(resources):  # GPU or multi-thread trials
                wait_for_references(pending, watch)
            trainable = make_trainable(resources, data_ref, pending)
            hooks = (watch, recorder)
            run_trials(ctx, spec, plan, trainable, hooks, ReferenceCheck(pending), choices)
            refs = wait_for_references(pending, watch)
        except JobCancelled:
            return True, {}
        finally:
            cancel_references(pending)
    if not watch.superseded:
        summary = reference_summary(refs, data.y[data.split == 2])
        ctx.write(
            lambda s: crud.set_job_references(s, job_id=ctx.job.id, references=summary),
            "references",
        )
    return watch.cancelled or watch.check(), refs


def drop_job_experiment(ctx: JobContext) -> None:
    """Delete the job's Tune experiment (its final status is written; the outputs are in the
    artifact store)."""
    storage, filesystem = tune_storage(ctx.settings)
    drop_experiment(experiment_path(storage, ctx.job.id), filesystem)
