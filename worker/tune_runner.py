"""Run a job's trials under Ray Tune, beside the unimodal references (once per seed).

The trials are one grid search over the concrete trials of ``worker.trial_plan`` (random axes
already drawn there with Tune's samplers), run by the function trainable
``worker.trainable.train_trial`` with the trial's CPUs and GPUs, under FIFO or ASHA on
``val_acc``. Tune keeps each job's experiment under ``<tune storage>/job-<id>`` (a local folder
or a URI), with every trial's last checkpoints: a job whose worker died resumes it with
``Tuner.restore``. ``TrialRecorder`` writes what the trials report to the database as it
arrives and ``CancelWatch`` stops everything when the job is cancelled.

The references (``worker.references``) are Ray tasks started before the trials; their object
refs reach every trial through ``tune.with_parameters``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from synib_spec.jobs import JobSpec, Resources
from synib_spec.knobs import resolve
from worker.ray_session import trial_retries
from worker.references import ReferenceCheck
from worker.trainable import InStore, TrialPayload, train_trial
from worker.tune_callbacks import CancelWatch, TrialRecorder

log = logging.getLogger(__name__)


def check_fits(resources: Resources, available: dict[str, float]) -> None:
    """ValueError naming the field when one trial asks for more CPUs or GPUs than this Ray has
    in all (``ray.cluster_resources()``): such a trial would wait forever."""
    for field, asked, key in (
        ("cpus_per_trial", resources.cpus_per_trial, "CPU"),
        ("gpus_per_trial", resources.gpus_per_trial, "GPU"),
    ):
        have = float(available.get(key, 0.0))
        if asked > have:
            raise ValueError(
                f"resources.{field}: each trial asks for {asked:g} {key}(s), but this "
                f"worker's Ray has {have:g} in all; ask for at most {have:g}"
            )


def make_scheduler(spec: JobSpec, max_epochs: int) -> Any:
    """FIFO, or ASHA on ``val_acc`` (max) over Tune's iterations (one per epoch)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler.type == "fifo":
        return FIFOScheduler()
    grace = spec.scheduler.grace_period
    # +1: the trainable's final report (the saved model) is one more Tune iteration.
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max(max_epochs + 1, grace),
        grace_period=grace,
        reduction_factor=spec.scheduler.reduction_factor,
    )


def experiment_path(storage: str, job_id: str) -> str:
    """Where Tune keeps the job's experiment: ``<storage>/job-<id>`` (a folder or a URI)."""
    return f"{storage.rstrip('/')}/{experiment_name(job_id)}"


def experiment_name(job_id: str) -> str:
    return f"job-{job_id}"


def make_trainable(resources: Resources, data_ref: Any, references: dict[int, Any]) -> Any:
    """``train_trial`` with the dataset and the references, and each trial's CPUs and GPUs."""
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(train_trial, data=InStore(data_ref), references=references),
        {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
    )


def _trial_name(trial: Any) -> str:
    return str(trial.config["trial"]["key"])


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def new_tuner(
    *,
    spec: JobSpec,
    payloads: list[TrialPayload],
    trainable: Any,
    storage: str,
    filesystem: Any = None,
    watch: CancelWatch,
    recorder: TrialRecorder,
    checkpoints_kept: int | None = None,
) -> Any:
    """A Tuner over ``payloads`` (one grid search), its experiment at
    ``experiment_path(storage, job id)`` (on ``filesystem``, a pyarrow FileSystem, when given:
    the object store's bucket; ``storage`` is then ``bucket/prefix/tune``).

    ``checkpoints_kept`` (the ``tune_checkpoints_kept`` setting): None keeps every checkpoint
    of a trial until the job ends. Tune uploads its experiment state (which names each trial's
    latest checkpoint) in the background, while it deletes checkpoints beyond ``num_to_keep``
    at once: a worker killed between the two leaves a state naming a deleted checkpoint, and
    that trial cannot resume. Keeping them all, a restored trial always finds its checkpoint
    (one up to Tune's snapshot period old; the epochs retrained are not recorded twice)."""
    from ray import tune

    max_epochs = max(int(resolve(p["knobs"])["epochs"]) for p in payloads)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(payloads))},
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            scheduler=make_scheduler(spec, max_epochs),
            max_concurrent_trials=spec.max_concurrent_trials,
            # A trial's process imports torch, Ray Tune and the training code (seconds): the
            # next trial with the same resources (all of a job's) runs in it.
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=experiment_name(watch.job_id),
            storage_path=storage,
            storage_filesystem=filesystem,
            stop=watch,
            callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=trial_retries()),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=checkpoints_kept),
            verbose=0,
        ),
    )


def restored_tuner(path: str, trainable: Any, filesystem: Any = None) -> Any:
    """The job's interrupted experiment at ``path`` (on ``filesystem``, a pyarrow FileSystem,
    when given): finished trials are not run again, unfinished ones go on from their last
    checkpoint, failed ones stay failed."""
    from ray import tune

    return tune.Tuner.restore(
        path,
        trainable=trainable,
        storage_filesystem=filesystem,
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def fit_off_main_thread(
    tuner: Any,
    watch: CancelWatch,
    references: ReferenceCheck | None = None,
    stop_wait_s: float = 60.0,
    check_every_s: float = 1.0,
) -> Any:
    """``tuner.fit()`` in a helper thread, the calling (main) thread waiting for it; returns
    its result (Tune's ``ResultGrid``).

    In the main thread, Tune replaces the SIGINT and SIGUSR1 handlers for the whole run and
    treats either signal as "end the experiment": ``fit`` then returns normally with trials
    unfinished, and the job would be completed from a partial sweep. SIGUSR1 is how Celery
    raises a task's soft time limit, and a terminal's Ctrl-C (a warm shutdown, which should let
    the job finish) sends SIGINT to the pool child too. Off the main thread Tune installs no
    handler, so Celery's stay: SIGINT is ignored in the pool child, and the soft time limit
    raises ``SoftTimeLimitExceeded`` here, while waiting. Then every trial is stopped (the
    stopper ``watch``), Tune is given ``stop_wait_s`` seconds to end them, and the exception
    goes on to the job runner, which fails the job with the time-limit reason.

    While waiting it also looks at the reference tasks every ``check_every_s`` seconds: once
    one failed, the trials are stopped (the caller's wait for the references then fails the job
    with that task's error).
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = tuner.fit()
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    def stop(reason: str) -> None:
        log.warning("job %s: stopping its trials: %s", watch.job_id, reason)
        watch.interrupt(reason)

    thread = threading.Thread(target=run, name="tune-fit", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    next_check = time.monotonic() + check_every_s
    try:
        while thread.is_alive():
            thread.join(0.25)
            if references is None or watch.interrupted or time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + check_every_s
            reason = references.failure()
            if reason is not None:
                stop(reason)
    except BaseException as exc:
        reason = (
            "the job exceeded the worker's time limit"
            if type(exc).__name__ == "SoftTimeLimitExceeded"
            else f"the worker stopped the job ({type(exc).__name__})"
        )
        stop(reason)
        thread.join(stop_wait_s)
        raise
    if "error" in outcome:
        raise outcome["error"]
    log.info("job %s: tuner.fit took %.1f s", watch.job_id, time.perf_counter() - t0)
    return outcome["result"]
