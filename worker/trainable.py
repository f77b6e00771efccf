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

import json
import os
import traceback
from collections.abc import Callable
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

CHECKPOINT_DIR = "ckpt"  # under the trial's out_dir: fit's resumable state
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


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
    cpus: int
    out_dir: str
    memory_mb: NotRequired[int | None]  # per-trial memory cap (worker.faults.memory_cap)
    faults: NotRequired[str]  # test-only fault-injection rules (worker.faults), "" = none


def limit_threads(cpus: int) -> None:
    """Use exactly the CPUs Ray gave this process (oversubscription is 30x slower here)."""
    n = max(1, int(cpus))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)


def placement(device_knob: str) -> dict[str, Any]:
    """Where this trial ran: the GPU ids Ray assigned (it also sets CUDA_VISIBLE_DEVICES to
    them) and the torch device that trained, e.g. ``{"gpu_ids": ["0"], "device": "cuda"}``."""
    import ray

    from synib_core.training.tensors import resolve_device

    return {
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


def _epoch_reporter() -> Any:
    from ray import tune

    def on_epoch_end(report: Any) -> None:
        metrics = {k: float(v) for k, v in report.metrics.items() if _is_number(v)}
        metrics["epoch"] = int(report.epoch)
        tune.report(metrics)

    return on_epoch_end


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


def references_failure(seed: int, exc: BaseException) -> str:
    """``unimodal references of seed 0 failed: TrainingDiverged: ...`` for a failed Ray task."""
    cause = getattr(exc, "cause", None) or exc
    return f"unimodal references of seed {seed} failed: {readable_error(cause)}"


def run_trial(
    payload: TrialPayload,
    data: MultimodalData,
    references: dict[int, Any] | None,
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
        on_epoch_end=with_faults(_epoch_reporter(), payload.get("faults") or "", payload["key"]),
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
        "placement": placement(str(payload["knobs"].get("device", "auto"))),
    }
    write_json(out_dir / "result.json", summary)
    return summary


def train_trial(
    config: dict[str, Any],
    data: MultimodalData | None = None,
    references: dict[int, Any] | None = None,
) -> None:
    """The Tune function trainable (wrap with ``tune.with_parameters(data=..., references=...)``).

    A failure writes ``error.json`` (``{"reason": ...}``) next to the outputs and raises
    ``TrialError(reason)``, so that Tune marks the trial errored and the driver shows the reason
    (the original exception may not survive pickling across processes). The trial runs under
    its memory cap (``payload["memory_mb"]``); running out of memory is the reason
    ``out of memory: ...`` and cached GPU memory is released before the error goes out.
    """
    payload: TrialPayload = config["trial"]
    if data is None:
        raise ValueError("data: the trainable needs the dataset (tune.with_parameters)")
    memory_mb = payload.get("memory_mb")
    reason: str | None = None
    try:
        with memory_cap(memory_mb):
            summary = run_trial(payload, data, references)
    except Exception as exc:
        reason = describe_out_of_memory(exc, memory_mb) or readable_error(exc)
        out_dir = Path(payload["out_dir"])
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            out_dir / "error.json", {"reason": reason, "traceback": traceback.format_exc()[-4000:]}
        )
    if reason is not None:  # outside the except: the traceback's frames (tensors) are gone
        release_accelerator_memory()
        raise TrialError(reason)
    from ray import tune

    final = {**summary["metrics"], "final": 1, "best_epoch": summary["best_epoch"]}
    tune.report(final)


def reference_predictions(
    knobs: dict[str, Any], data: MultimodalData, seed: int, cpus: int
) -> dict[str, np.ndarray]:
    """Unimodal reference test predictions for one seed: modality -> (N_test,) int64."""
    from synib_core.config import config_from_knobs
    from synib_core.training import train_references

    limit_threads(cpus)
    refs = train_references(config_from_knobs(knobs), data, seed=seed)
    return {m: np.asarray(p, dtype=np.int64) for m, p in refs.items()}
