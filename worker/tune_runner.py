"""Run a job's trials under Ray Tune, beside the unimodal references (once per seed).

The references (one unimodal model per modality and seed) are Ray tasks started just before the
trials; their object refs go to every trial through ``tune.with_parameters`` and a trial fetches
its seed's test predictions after its last epoch (``start_references``). Trials report every
epoch; ``TrialRecorder`` writes them to the database as they arrive and ``CancelWatch`` stops
everything when the job is being cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.trainable import (
    InStore,
    ReferencesFailed,
    TrialPayload,
    reference_predictions,
    references_failure,
    train_trial,
)
from worker.tune_callbacks import CancelWatch, TrialRecorder

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The job was cancelled while the driver waited for its references."""


@dataclass(frozen=True)
class Resources:
    """Per-trial resources (Ray may take fractions) and the concurrency cap of one job."""

    cpus: float = 1.0
    gpus: float = 0.0
    max_concurrent: int | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Resources:
        res = spec.get("resources") or {}
        cpus = float(res.get("cpus_per_trial") or 1.0)
        gpus = float(res.get("gpus_per_trial") or 0.0)
        if cpus <= 0:
            raise ValueError(f"resources.cpus_per_trial: must be > 0, got {cpus}")
        if gpus < 0:
            raise ValueError(f"resources.gpus_per_trial: must be >= 0, got {gpus}")
        limit = spec.get("max_concurrent_trials")
        return cls(cpus, gpus, int(limit) if limit else None)

    @property
    def threads(self) -> int:
        """torch / OMP threads of a trial: its whole CPUs, at least one."""
        return max(1, int(self.cpus))

    @property
    def references_beside_trials(self) -> bool:
        """True when the reference tasks may run beside the trials without a CPU slot: trials
        on one thread and no GPU. Otherwise they take the trials' resources and finish before
        the trials start (a GPU trial would hold its GPU while it waited for a reference, and
        a reference's thread team beside the trials' would slow them down)."""
        return self.gpus == 0 and self.threads == 1

    def as_tune(self) -> Any:
        """The trial's placement group: an empty head bundle for its Tune actor, which only
        relays (``trainable.train_trial``), and one bundle with the trial's CPUs and GPUs for
        the Ray task that trains."""
        from ray.tune import PlacementGroupFactory

        return PlacementGroupFactory([{}, {"CPU": self.cpus, "GPU": self.gpus}])

    def check_fits(self, available: dict[str, float]) -> None:
        """ValueError naming the field when one trial asks for more CPUs or GPUs than this Ray
        has in all (``ray.cluster_resources()``): such a trial would wait forever."""
        for field, asked, key in (
            ("cpus_per_trial", self.cpus, "CPU"),
            ("gpus_per_trial", self.gpus, "GPU"),
        ):
            have = float(available.get(key, 0.0))
            if asked > have:
                raise ValueError(
                    f"resources.{field}: each trial asks for {asked:g} {key}(s), but this "
                    f"worker's Ray has {have:g} in all; ask for at most {have:g}"
                )


def make_scheduler(spec: dict[str, Any], max_epochs: int) -> Any:
    """FIFO (default) or ASHA on ``val_acc`` (max), from ``spec["scheduler"]``."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    sched = spec.get("scheduler") or {}
    kind = str(sched.get("type") or "fifo").lower()
    if kind == "fifo":
        return FIFOScheduler()
    if kind == "asha":
        grace = int(sched.get("grace_period") or 1)
        factor = float(sched.get("reduction_factor") or 2)
        if grace < 1 or factor <= 1:
            raise ValueError("scheduler: asha needs grace_period >= 1 and reduction_factor > 1")
        # +1: the trainable's final report (the saved model) is one more Tune iteration.
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(max_epochs + 1, grace),
            grace_period=grace,
            reduction_factor=factor,
        )
    raise ValueError(f"scheduler.type: unknown scheduler {kind!r}, allowed: fifo, asha")


def start_references(
    knobs: dict[str, Any], data: MultimodalData | Any, seeds: list[int], resources: Resources
) -> dict[int, Any]:
    """Start one Ray task per seed that trains its unimodal references; ``{seed: object ref}``.

    When ``resources.references_beside_trials`` (one-thread CPU trials, the default), the
    trials start at once, beside these tasks: a trial needs its seed's references only after
    its last epoch (for the synergy metrics), so Tune's start, the first trial processes' start
    and their first epochs overlap the references' training. For that the tasks (one thread
    each, and short: one unimodal model per modality) reserve no CPU in Ray's accounting; with
    a CPU each they would hold back the first trials (on a 2-CPU worker, all of them).
    Otherwise each task reserves a trial's CPUs and GPUs, and the caller lets them finish
    before the trials start. ``data``: the dataset or its object ref.
    """
    import ray

    from worker.ray_envs import task_pool_env

    beside = resources.references_beside_trials
    remote = ray.remote(reference_predictions).options(
        num_cpus=0 if beside else resources.cpus,
        num_gpus=resources.gpus,
        max_retries=0,
        runtime_env=task_pool_env(),  # the warm pool's processes (the trials' tasks use them too)
    )
    data_ref = data if isinstance(data, ray.ObjectRef) else ray.put(data)
    return {seed: remote.remote(knobs, data_ref, seed, resources.threads) for seed in seeds}


def wait_for_references(
    pending: dict[int, Any], watch: CancelWatch
) -> dict[int, dict[str, np.ndarray]]:
    """The references of every seed (``{seed: {modality: (N_test,) int64}}``), waiting for the
    tasks still running; raises ``JobCancelled`` when the job is cancelled meanwhile and
    ``ReferencesFailed`` (a ValueError: the job fails with its message) when a task failed."""
    import ray

    seed_of = {ref: seed for seed, ref in pending.items()}
    results: dict[int, dict[str, np.ndarray]] = {}
    waiting = list(seed_of)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
        for ref in ready:
            try:
                results[seed_of[ref]] = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise ReferencesFailed(references_failure(seed_of[ref], exc)) from None
        if waiting and watch.check():
            raise JobCancelled()
    return results


def cancel_references(pending: dict[int, Any]) -> None:
    """Stop the reference tasks that are still running (the job ended or was cancelled)."""
    import ray

    if not pending:
        return
    _, running = ray.wait(list(pending.values()), num_returns=len(pending), timeout=0)
    for ref in running:
        ray.cancel(ref, force=True)


def reference_summary(
    references: dict[int, dict[str, np.ndarray]], y_test: np.ndarray
) -> dict[str, dict[str, dict[str, float]]]:
    """``{"<seed>": {modality: {"test_acc": acc}}}`` (the jobs.references JSON)."""
    return {
        str(seed): {m: {"test_acc": float(np.mean(pred == y_test))} for m, pred in refs.items()}
        for seed, refs in sorted(references.items())
    }


def run_trials(
    *,
    spec: dict[str, Any],
    payloads: list[TrialPayload],
    data_ref: Any,
    references: dict[int, Any],
    resources: Resources,
    watch: CancelWatch,
    storage_dir: Path,
    retry_s: float = 60.0,
) -> float:
    """Run the trials under Tune (blocking until all end or the job is cancelled).

    Statuses and epoch metrics reach the database through the callbacks (each write retried
    for ``retry_s`` seconds while the database is down). ``data_ref``: the dataset's object ref
    (the references' tasks read the same copy). Returns the seconds ``tuner.fit`` took.
    """
    from ray import tune

    max_epochs = max(int(p["knobs"].get("epochs", 30)) for p in payloads)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=InStore(data_ref), references=references),
        resources.as_tune(),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(payloads))},
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            scheduler=make_scheduler(spec, max_epochs),
            max_concurrent_trials=resources.max_concurrent,
            # One Tune actor relays trial after trial: a fresh one per trial would cost a
            # process start and the Ray Tune import each time.
            reuse_actors=True,
            trial_name_creator=lambda t: str(t.config["trial"]["key"]),
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(storage_dir),
            stop=watch,
            callbacks=[TrialRecorder(watch.database_url, watch, retry_s=retry_s)],
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
    t0 = time.perf_counter()
    fit_off_main_thread(tuner, watch, ReferenceCheck(references))
    seconds = time.perf_counter() - t0
    log.info("tuner.fit: %d trials in %.1f s", len(payloads), seconds)
    return seconds


class ReferenceCheck:
    """Whether one of the reference tasks beside the trials failed (each finished task is
    looked at once): a job whose references failed cannot be reported, so its trials are
    stopped then instead of after their last epoch."""

    def __init__(self, pending: dict[int, Any] | None) -> None:
        import ray

        self.waiting = {ref: seed for seed, ref in (pending or {}).items()
                        if isinstance(ref, ray.ObjectRef)}  # fmt: skip

    def failure(self) -> str | None:
        """``unimodal references of seed S failed: ...`` once a task failed, else None."""
        import ray

        if not self.waiting:
            return None
        done, _ = ray.wait(list(self.waiting), num_returns=len(self.waiting), timeout=0)
        for ref in done:
            seed = self.waiting.pop(ref)
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.RayError as exc:
                return references_failure(seed, exc)
        return None


def fit_off_main_thread(
    tuner: Any,
    watch: CancelWatch,
    references: ReferenceCheck | None = None,
    stop_wait_s: float = 60.0,
    check_every_s: float = 1.0,
) -> None:
    """``tuner.fit()`` in a helper thread, the calling (main) thread waiting for it.

    In the main thread, Tune replaces the SIGINT and SIGUSR1 handlers for the whole run and
    treats either signal as "end the experiment": ``fit`` then returned normally with trials
    unfinished, and the job was completed from a partial sweep. SIGUSR1 is how Celery raises
    a task's soft time limit, and a terminal's Ctrl-C (a warm shutdown, which should let the
    job finish) sends SIGINT to the pool child too. Off the main thread Tune installs no
    handler, so Celery's stay: SIGINT is ignored in the pool child, and the soft time limit
    raises ``SoftTimeLimitExceeded`` here, while waiting. Then every trial is stopped (the
    stopper ``watch``), Tune is given ``stop_wait_s`` seconds to end them, and the exception
    goes on to the job runner, which fails the job with the time-limit reason.

    While waiting it also looks at the reference tasks every ``check_every_s`` seconds: once
    one failed, the trials are stopped (the caller's wait for the references then fails the job
    with that task's error).
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            tuner.fit()
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    def stop(reason: str) -> None:
        log.warning("job %s: stopping its trials: %s", watch.job_id, reason)
        watch.interrupt(reason)

    thread = threading.Thread(target=run, name="tune-fit", daemon=True)
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
    if failure:
        raise failure[0]
