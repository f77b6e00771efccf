"""Run a job's trials under Ray Tune: unimodal references once per seed, then every trial.

The references (one unimodal model per modality and seed) are Ray tasks with the trial's
resources; their test predictions go to every trial through ``tune.with_parameters`` (the object
store). Trials report every epoch; ``TrialRecorder`` writes them to the database as they arrive
and ``CancelWatch`` stops everything when the job is being cancelled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.trainable import TrialPayload, reference_predictions, train_trial
from worker.tune_callbacks import CancelWatch, TrialRecorder

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The job was cancelled while its references were being trained."""


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

    def as_tune(self) -> dict[str, float]:
        return {"cpu": self.cpus, "gpu": self.gpus}

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


def train_all_references(
    knobs: dict[str, Any],
    data: MultimodalData,
    seeds: list[int],
    resources: Resources,
    watch: CancelWatch,
) -> dict[int, dict[str, np.ndarray]]:
    """Unimodal reference predictions per seed (Ray tasks in parallel); cancellable.

    Returns ``{seed: {modality: (N_test,) int64}}``.
    """
    import ray

    remote = ray.remote(reference_predictions).options(
        num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=0
    )
    data_ref = ray.put(data)
    futures = {remote.remote(knobs, data_ref, seed, resources.threads): seed for seed in seeds}
    results: dict[int, dict[str, np.ndarray]] = {}
    pending = list(futures)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
        for ref in ready:
            results[futures[ref]] = ray.get(ref)
        if pending and watch.check():
            for ref in pending:
                ray.cancel(ref, force=True)
            raise JobCancelled()
    return results


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
    data: MultimodalData,
    references: dict[int, dict[str, np.ndarray]],
    resources: Resources,
    watch: CancelWatch,
    storage_dir: Path,
    retry_s: float = 60.0,
) -> float:
    """Run the trials under Tune (blocking until all end or the job is cancelled).

    Statuses and epoch metrics reach the database through the callbacks (each write retried
    for ``retry_s`` seconds while the database is down). Returns the seconds ``tuner.fit`` took.
    """
    from ray import tune

    max_epochs = max(int(p["knobs"].get("epochs", 30)) for p in payloads)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, references=references), resources.as_tune()
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(payloads))},
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            scheduler=make_scheduler(spec, max_epochs),
            max_concurrent_trials=resources.max_concurrent,
            # One Ray actor runs trial after trial (same resources): a fresh actor per trial
            # cost a process start and the torch import each time (seconds per trial).
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
    tuner.fit()
    seconds = time.perf_counter() - t0
    log.info("tuner.fit: %d trials in %.1f s", len(payloads), seconds)
    return seconds
