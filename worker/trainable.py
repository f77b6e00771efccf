"""The Ray Tune function trainable: one trial = one ``synib_core.fit`` run.

Runs in a Ray worker process. Each trial gets ``config["trial"]`` (a ``TrialPayload`` dict) and,
through ``tune.with_parameters``, the dataset and the unimodal references of every seed: Ray
object refs of the reference tasks, which are still running when the first trials start. A trial
fetches its seed's references only after its last epoch (``fit`` takes them as a callable), so
the trials' start and first epochs overlap the references' training. Every
epoch it reports the epoch metrics to Tune. The resumable state is ``fit``'s own checkpoint in
``<out_dir>/ckpt`` (the artifact store, written after every epoch): a job resumed after its
worker died continues each trial from there. Tune keeps no checkpoints of its own (trials are
never restarted by Tune, ``max_failures=0``, and copying the state into Tune's storage every
epoch cost about 0.1 s per epoch).

At the end it writes into ``out_dir`` (in the artifact store): ``model.zip`` (the best model's
bundle, ``FitResult.save``, with the job and trial ids in its ``extra``), ``test_pred.npy`` ((N_test,) int predictions for the paired bootstrap) and
``result.json`` (best_epoch, metrics). A failed trial leaves ``error.json`` with a readable reason.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from worker.faults import (
    describe_out_of_memory,
    memory_cap,
    release_accelerator_memory,
    with_faults,
)

if TYPE_CHECKING:
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "ckpt"  # under the trial's out_dir: fit's resumable state
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class InStore:
    """An object ref handed to the trainable through ``tune.with_parameters`` (which cannot
    store a bare object ref): the dataset, resolved only in the task that trains."""

    ref: Any


class TrialError(RuntimeError):
    """A trial's failure as Ray transports it (message only: always picklable)."""


class ReferencesFailed(ValueError):
    """The unimodal references a trial needs for its synergy metrics could not be trained."""


class TrialPayload(TypedDict):
    """What a trial needs besides the data: its identity, knobs, resources and output folder."""

    key: str
    job_id: str
    trial_id: str
    method: str
    seed: int
    knobs: dict[str, Any]
    cpus: int  # torch / OMP threads
    out_dir: str
    ray_cpus: NotRequired[float]  # the trial's CPUs in Ray's accounting (may be a fraction)
    gpus: NotRequired[float]
    memory_mb: NotRequired[int | None]  # per-trial memory cap (worker.faults.memory_cap)
    faults: NotRequired[str]  # test-only fault-injection rules (worker.faults), "" = none
    tune_actor_pid: NotRequired[int]  # the process of the Tune actor that started the task


def limit_threads(cpus: int) -> None:
    """Use exactly the CPUs Ray gave this process (oversubscription is 30x slower here)."""
    n = max(1, int(cpus))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)


def placement(device_knob: str) -> dict[str, Any]:
    """Where this trial ran: its process, the GPU ids Ray assigned (it also sets
    CUDA_VISIBLE_DEVICES to them) and the torch device that trained, e.g. ``{"pid": 4711,
    "gpu_ids": ["0"], "device": "cuda"}``."""
    import ray

    from synib_core.training.tensors import resolve_device

    return {
        "pid": os.getpid(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device": resolve_device(device_knob).type,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, default=float))
    tmp.replace(path)


def readable_error(exc: BaseException) -> str:
    """``TrainingDiverged: loss is nan at epoch 2`` (type name and message, one line)."""
    message = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {message}"[:1000]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def seed_references(references: dict[int, Any] | None, seed: int) -> Callable[[], Any]:
    """What ``fit`` calls after the last epoch: the seed's references, waiting for the Ray task
    that trains them when it has not finished yet (None when the job has none for the seed).

    A failed reference task fails the trial with ``ReferencesFailed: unimodal references of seed
    S failed: <the task's error>``.
    """

    def fetch() -> dict[str, np.ndarray] | None:
        found = (references or {}).get(seed)
        if found is None or isinstance(found, dict):
            return found
        import ray

        try:
            return dict(ray.get(found))
        except ray.exceptions.RayError as exc:
            raise ReferencesFailed(references_failure(seed, exc)) from None

    return fetch


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised (``RayTaskError.cause``), else ``exc`` itself."""
    return getattr(exc, "cause", None) or exc


def references_failure(seed: int, exc: BaseException) -> str:
    """``unimodal references of seed 0 failed: TrainingDiverged: ...`` for a failed Ray task."""
    return f"unimodal references of seed {seed} failed: {readable_error(task_cause(exc))}"


def run_trial(
    payload: TrialPayload,
    data: MultimodalData,
    references: dict[int, Any] | None,
    on_epoch_end: Callable[[Any], None],
) -> dict[str, Any]:
    """Train one trial, write its outputs to ``payload["out_dir"]``; returns result.json's dict."""
    from synib_core.config import config_from_knobs
    from synib_core.training import fit

    limit_threads(payload["cpus"])
    out_dir = Path(payload["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    # fit's checkpoint lives with the trial's outputs (one folder per trial of the job), so a
    # job resumed after its worker died continues every trial from its last epoch.
    ckpt_dir = out_dir / CHECKPOINT_DIR
    ckpt_dir.mkdir(exist_ok=True)
    result = fit(
        config_from_knobs(payload["knobs"]),
        data,
        method=payload["method"],
        seed=payload["seed"],
        references=seed_references(references, payload["seed"]),
        on_epoch_end=with_faults(on_epoch_end, payload.get("faults") or "", payload["key"]),
        checkpoint_dir=str(ckpt_dir),
    )
    extra = {
        "job_id": payload["job_id"],
        "trial_id": payload["trial_id"],
        "trial_key": payload["key"],
    }
    result.save(str(out_dir / "model.zip"), extra=extra)
    np.save(out_dir / "test_pred.npy", np.asarray(result.test_pred, dtype=np.int64))
    summary = {
        "best_epoch": int(result.best_epoch),
        "metrics": {k: float(v) for k, v in result.metrics.items() if _is_number(v)},
        "placement": {
            **placement(str(payload["knobs"].get("device", "auto"))),
            "tune_actor_pid": payload.get("tune_actor_pid"),
        },
    }
    write_json(out_dir / "result.json", summary)
    return summary


def trial_epochs(
    payload: TrialPayload, data: MultimodalData, references: dict[int, Any] | None
) -> Iterator[dict[str, Any]]:
    """The trial's training, as a Ray streaming-generator task on a pooled Ray worker.

    Yields ``{"epoch": metrics}`` after every epoch and ``{"final": result.json's dict}`` at the
    end. ``run_trial`` runs in a helper thread (a generator cannot yield from inside ``fit``'s
    callback); when the task is cancelled (the trial was stopped: ASHA, the job's cancel) the
    thread stops at its next epoch's end and the process stays in the pool. A failure writes
    ``error.json`` and raises ``TrialError(reason)`` (see ``guarded_trial``).
    """
    outbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    taken = threading.Semaphore(1)  # released when Tune has handled the last epoch reported
    stop = threading.Event()

    def on_epoch_end(report: Any) -> None:
        # At most one epoch ahead of Tune: epoch k+1 trains while the driver handles epoch k
        # (its database row, ASHA's decision), instead of the trial waiting for the driver
        # every epoch; a trial that Tune stops after epoch k has trained at most k+1.
        while not stop.is_set() and not taken.acquire(timeout=0.5):
            pass
        if stop.is_set():
            raise TrialStopped("the trial was stopped")
        metrics = {k: float(v) for k, v in report.metrics.items() if _is_number(v)}
        outbox.put(("epoch", {**metrics, "epoch": int(report.epoch)}))

    def target() -> None:
        try:
            outbox.put(("final", guarded_trial(payload, data, references, on_epoch_end)))
        except TrialStopped:
            outbox.put(("stopped", None))
        except BaseException as exc:  # TrialError (error.json written) or anything else
            outbox.put(("error", exc))

    thread = threading.Thread(target=target, name=f"trial-{payload['key']}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "epoch":
                # Each yield returns once the trainable took the item (the task's
                # backpressure is one item): the first when it fetched the epoch, the second
                # when it came back for more, that is after Tune handled the epoch.
                yield {"epoch": value}
                yield {}
                taken.release()
            elif kind == "final":
                yield {"final": value}
                return
            elif kind == "error":
                raise value
            else:
                return
    finally:  # cancelled (KeyboardInterrupt here) or done: the thread ends at its next epoch
        stop.set()
        thread.join()


class TrialStopped(Exception):
    """Raised in a trial's training thread when its task was cancelled."""


def guarded_trial(
    payload: TrialPayload,
    data: MultimodalData,
    references: dict[int, Any] | None,
    on_epoch_end: Callable[[Any], None],
) -> dict[str, Any]:
    """``run_trial`` under the trial's memory cap (``payload["memory_mb"]``).

    A failure writes ``error.json`` (``{"reason": ...}``) next to the outputs and raises
    ``TrialError(reason)`` (the original exception may not survive pickling across processes);
    running out of memory is the reason ``out of memory: ...`` and cached GPU memory is
    released before the error goes out. ``TrialStopped`` passes through.
    """
    memory_mb = payload.get("memory_mb")
    reason: str | None = None
    try:
        with memory_cap(memory_mb):
            return run_trial(payload, data, references, on_epoch_end)
    except TrialStopped:
        raise
    except Exception as exc:
        reason = describe_out_of_memory(exc, memory_mb) or readable_error(exc)
        write_error(Path(payload["out_dir"]), reason, traceback.format_exc()[-4000:])
    # Outside the except: the traceback's frames (tensors) are gone.
    release_accelerator_memory()
    raise TrialError(reason)


def write_error(out_dir: Path, reason: str, trace: str = "") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "error.json", {"reason": reason, "traceback": trace})


def train_trial(
    config: dict[str, Any],
    data: InStore | None = None,
    references: dict[int, Any] | None = None,
) -> None:
    """The Tune function trainable (wrap with ``tune.with_parameters(data=InStore(<object ref
    of the dataset>), references=...)``).

    It runs in the trial's Tune actor, which holds no resources (the empty head bundle of the
    trial's placement group, ``tune_runner.Resources.as_tune``) and does not train: it starts
    ``trial_epochs`` as a Ray task in the trial's placement group, with the trial's CPUs and
    GPUs, and reports each epoch the task yields to Tune. CPU trials so run in Ray's pooled
    worker processes, which the worker warmed (torch and the training code imported) and keeps
    across jobs; the Tune actor itself runs in a process prestarted before the job with Ray Tune
    imported (``worker.actor_prestart``). A GPU trial gets a process of its own
    (``max_calls=1``: its CUDA context and memory go with it). When Tune stops the trial (ASHA,
    the job's cancel), ``tune.report`` exits this thread and the task is cancelled.
    """
    import ray
    from ray import tune

    from worker.ray_envs import task_pool_env

    payload: TrialPayload = config["trial"]
    payload = {**payload, "tune_actor_pid": os.getpid()}
    if data is None:
        raise ValueError("data: the trainable needs the dataset (tune.with_parameters)")
    gpus = float(payload.get("gpus") or 0.0)
    task = _trial_task(own_process=gpus > 0).options(
        num_cpus=float(payload.get("ray_cpus") or payload["cpus"]),
        num_gpus=gpus,
        runtime_env=task_pool_env(),  # the warm pool's processes, not the actors' (ray_envs)
        num_returns="streaming",
        _generator_backpressure_num_objects=1,
        max_retries=0,
        name=f"trial {payload['key']}",
    )
    epochs: Any = task.remote(payload, data.ref, references)  # an ObjectRefGenerator
    final: dict[str, Any] | None = None
    try:
        for ref in epochs:
            item = ray.get(ref)
            if "epoch" in item:
                tune.report(item["epoch"])
            elif "final" in item:
                final = item["final"]
    except ray.exceptions.RayTaskError as exc:  # the task raised (error.json written)
        cause = task_cause(exc)
        reason = str(cause) if isinstance(cause, TrialError) else readable_error(cause)
        raise TrialError(reason) from None
    except ray.exceptions.RayError as exc:  # its process died (e.g. the kernel's OOM killer)
        reason = f"the trial's process died: {readable_error(exc)}"
        write_error(Path(payload["out_dir"]), reason)
        raise TrialError(reason) from None
    finally:
        if final is None:  # stopped by Tune, or failed: end the task, keep its process
            stop_task(epochs)
    if final is None:
        raise TrialError("the trial's task ended without a result")
    tune.report({**final["metrics"], "final": 1, "best_epoch": final["best_epoch"]})


@functools.cache
def _trial_task(own_process: bool) -> Any:
    """``trial_epochs`` as a Ray remote function, made once per actor process, not per trial;
    ``own_process`` (GPU trials): its process ends with it (``max_calls=1``)."""
    import ray

    return ray.remote(max_calls=1 if own_process else 0)(trial_epochs)


def stop_task(epochs: Any, wait_s: float = 5.0) -> None:
    """Cancel a trial's task (a KeyboardInterrupt in it, not a kill: its pooled process lives
    on) and wait up to ``wait_s`` for it to end, so that its resources are free."""
    import ray

    try:
        ray.cancel(epochs, force=False)
        ray.wait([epochs.completed()], timeout=wait_s)
    except Exception:  # never mask why the trial stopped
        log.debug("stopping a trial task failed", exc_info=True)


def reference_predictions(
    knobs: dict[str, Any], data: MultimodalData, seed: int, cpus: int
) -> dict[str, np.ndarray]:
    """Unimodal reference test predictions for one seed: modality -> (N_test,) int64."""
    from synib_core.config import config_from_knobs
    from synib_core.training import train_references

    limit_threads(cpus)
    refs = train_references(config_from_knobs(knobs), data, seed=seed)
    return {m: np.asarray(p, dtype=np.int64) for m, p in refs.items()}
