"""The unimodal references of a job (one model per modality and seed, for the synergy metrics):
one Ray task per seed, started before the trials; a trial fetches its seed's predictions after
its last epoch (``worker.trainable.seed_references``), the job waits for all of them at the end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from synib_spec.jobs import Resources
from worker.trainable import ReferencesFailed, reference_predictions, references_failure
from worker.tune_callbacks import CancelWatch

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The job was cancelled while the driver waited for its references."""


def references_beside_trials(resources: Resources) -> bool:
    """True when the reference tasks may run beside the trials without a CPU slot: trials on
    one thread and no GPU. Otherwise they take the trials' resources and finish before the
    trials start (a GPU trial would hold its GPU while it waited for a reference, and a
    reference's thread team beside the trials' would slow them down)."""
    return resources.gpus_per_trial == 0 and resources.threads == 1


def start_references(
    knobs: dict[str, Any],
    data: MultimodalData | Any,
    seeds: list[int],
    resources: Resources,
    backbones: dict[str, Any] | None = None,
) -> dict[int, Any]:
    """Start one Ray task per seed that trains its unimodal references; ``{seed: object ref}``.

    With ``references_beside_trials`` (one-thread CPU trials, the default) the tasks reserve no
    CPU: the trials need them only after their last epoch, so they start at once and the
    references train meanwhile (with a CPU each they would hold back the first trials, on a
    2-CPU worker all of them). Otherwise each task reserves a trial's CPUs and GPUs, and the
    caller lets them finish before the trials start. ``data``: the dataset or its object ref;
    ``backbones``: modality -> ``EncoderChoice.to_json()``.
    """
    import ray

    beside = references_beside_trials(resources)
    remote = ray.remote(reference_predictions).options(
        num_cpus=0 if beside else resources.cpus_per_trial,
        num_gpus=resources.gpus_per_trial,
        max_retries=0,
    )
    data_ref = data if isinstance(data, ray.ObjectRef) else ray.put(data)
    threads = resources.threads
    return {seed: remote.remote(knobs, data_ref, seed, threads, backbones) for seed in seeds}


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
                raise ReferencesFailed(logged_failure(seed_of[ref], exc)) from None
        if waiting and watch.check():
            raise JobCancelled()
    return results


def logged_failure(seed: int, exc: BaseException) -> str:
    """The one-line reason of a failed reference task (``references_failure``); the task's full
    remote traceback goes to the worker log."""
    reason = references_failure(seed, exc)
    log.warning("%s\n%s", reason, exc)
    return reason


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
                return logged_failure(seed, exc)
        return None
