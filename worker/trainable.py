"""The Ray Tune function trainable: one trial = one ``synib_core.fit`` run in the trial's process.

``train_trial`` gets ``config["trial"]`` (a ``TrialPayload``) and, through
``tune.with_parameters``, the dataset and the unimodal references of every seed (object refs of
the reference tasks, which may still be running: a trial needs its seed's references only after
its last epoch, for the synergy metrics). Tune gives the trial its CPUs and GPUs
(``tune.with_resources``); the trial uses exactly those CPUs for torch.

Every epoch it reports the epoch's metrics with a checkpoint: the folder ``fit`` wrote its
resumable state to (``checkpoint_dir``, written after each epoch before ``on_epoch_end``). A
trial Tune restores (the job's worker died, ``Tuner.restore``) starts from
``tune.get_checkpoint()``: a copy of it is ``fit``'s ``checkpoint_dir``, so training goes on
from the next epoch with the same RNG state.

The last report (``final=1``) carries the trial's outputs in its checkpoint: ``model.zip`` (the
selected model's bundle, ``FitResult.save``, with the job and trial ids in its ``extra``),
``test_pred.npy`` ((N_test,) int64 predictions, for the paired bootstrap) and ``result.json``
(best_epoch, metrics, where the trial ran). A failed trial raises ``TrialFailed`` with a
one-line reason (``TrainingDiverged: training diverged: loss is nan at epoch 2, ...``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from worker.limits import describe_out_of_memory, memory_cap, release_accelerator_memory

if TYPE_CHECKING:
    from synib_core.data import MultimodalData
    from synib_core.training import EpochReport, FitResult

log = logging.getLogger(__name__)

ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colours in a message

MODEL_ZIP = "model.zip"
PREDICTIONS = "test_pred.npy"
RESULT_JSON = "result.json"  # in a checkpoint: the trial's final outputs
OUTPUTS = (MODEL_ZIP, PREDICTIONS, RESULT_JSON)
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class InStore:
    """An object ref handed to the trainable through ``tune.with_parameters``, which puts each
    parameter into Ray's object store itself and cannot take a bare object ref: the dataset the
    reference tasks read too, one copy for all."""

    ref: Any


class TrialFailed(RuntimeError):
    """A trial's failure as one readable line (always picklable, unlike some causes)."""


class ReferencesFailed(ValueError):
    """The unimodal references a trial needs for its synergy metrics could not be trained."""


class TrialPayload(TypedDict):
    """What a trial needs besides the data: its identity, knobs and limits."""

    key: str
    job_id: str
    trial_id: str
    method: str
    seed: int
    knobs: dict[str, Any]
    threads: int  # torch / OMP threads: the trial's whole CPUs
    memory_mb: NotRequired[int | None]  # per-trial memory cap (worker.limits.memory_cap)
    # modality -> EncoderChoice.to_json() (worker.features): a pretrained model's ModelInfo and
    # local path; one that trains is loaded from the files on the trial's node
    backbones: NotRequired[dict[str, Any]]


def encoder_choices(backbones: dict[str, Any] | None) -> dict[str, Any]:
    """modality -> ``EncoderChoice`` from the JSON of a payload."""
    from synib_core.backbones import EncoderChoice

    return {m: EncoderChoice.from_json(c) for m, c in (backbones or {}).items()}


def limit_threads(threads: int) -> None:
    """Use exactly the CPUs Ray gave this trial (oversubscription made tiny models 30x slower)."""
    n = max(1, int(threads))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)


def placement(device_knob: str) -> dict[str, Any]:
    """Where this trial ran: its node, process, the GPU ids Ray assigned (Ray also sets
    CUDA_VISIBLE_DEVICES to them) and the torch device that trained, e.g. ``{"pid": 4711,
    "gpu_ids": ["0"], "device": "cuda", ...}``."""
    import ray

    from synib_core.training.tensors import resolve_device

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device": resolve_device(device_knob).type,
    }


def readable_error(exc: BaseException) -> str:
    """``TrainingDiverged: loss is nan at epoch 2`` (type name and message, one line). Ray's own
    errors carry a remote traceback (paths, pid, node IP, colour codes) in their message: only
    their type is named (the callers log the rest: ``worker.references``, ``failure_reason``)."""
    if type(exc).__module__.startswith("ray."):
        return f"{type(exc).__name__} (details in the worker log)"
    message = " ".join(ANSI_CODE.sub("", str(exc)).split()) or "no message"
    return f"{type(exc).__name__}: {message}"[:1000]


def task_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised (``RayTaskError.cause``), else ``exc`` itself."""
    return getattr(exc, "cause", None) or exc


def references_failure(seed: int, exc: BaseException) -> str:
    """``unimodal references of seed 0 failed: TrainingDiverged: ...`` for a failed Ray task."""
    cause = task_cause(exc)
    reason = str(cause) if isinstance(cause, TrialFailed) else readable_error(cause)
    return f"unimodal references of seed {seed} failed: {reason}"


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


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    }


def report_epochs(state_dir: Path) -> Callable[[EpochReport], None]:
    """``fit``'s ``on_epoch_end``: the epoch's metrics to Tune, with fit's state as checkpoint
    (Tune copies the folder to its storage before ``tune.report`` returns)."""
    from ray import tune

    def report(epoch: EpochReport) -> None:
        metrics = {**_numbers(epoch.metrics), "epoch": int(epoch.epoch)}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(state_dir)))

    return report


def restore_from(checkpoint: Any, state_dir: Path, final_dir: Path) -> dict[str, Any] | None:
    """Copy Tune's checkpoint of this trial (None: a fresh start) into ``state_dir``, or into
    ``final_dir`` when it holds the final outputs; then returns result.json's dict."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as saved:
        final = (Path(saved) / RESULT_JSON).is_file()
        shutil.copytree(saved, final_dir if final else state_dir, dirs_exist_ok=True)
    if not final:
        return None
    return dict(json.loads((final_dir / RESULT_JSON).read_text()))


def write_outputs(result: FitResult, payload: TrialPayload, out: Path) -> dict[str, Any]:
    """The trial's outputs into ``out``; returns result.json's dict."""
    out.mkdir(parents=True, exist_ok=True)
    extra = {
        "job_id": payload["job_id"],
        "trial_id": payload["trial_id"],
        "trial_key": payload["key"],
    }
    result.save(str(out / MODEL_ZIP), extra=extra)
    np.save(out / PREDICTIONS, np.asarray(result.test_pred, dtype=np.int64))
    summary = {
        "best_epoch": int(result.best_epoch),
        "metrics": _numbers(result.metrics),
        "placement": placement(str(payload["knobs"].get("device", "auto"))),
    }
    (out / RESULT_JSON).write_text(json.dumps(summary))
    return summary


def run_fit(
    payload: TrialPayload,
    data: MultimodalData,
    references: dict[int, Any] | None,
    state_dir: Path,
    final_dir: Path,
) -> dict[str, Any]:
    """``fit`` under the trial's memory cap, reporting every epoch; writes the outputs to
    ``final_dir`` and returns result.json's dict. Raises ``TrialFailed`` with the reason (``out
    of memory: ...`` when it ran out of memory; cached GPU memory is released first)."""
    from synib_core.config import config_from_knobs
    from synib_core.training import fit

    memory_mb = payload.get("memory_mb")
    try:
        with memory_cap(memory_mb):
            result = fit(
                config_from_knobs(payload["knobs"]),
                data,
                method=payload["method"],
                seed=payload["seed"],
                references=seed_references(references, payload["seed"]),
                on_epoch_end=report_epochs(state_dir),
                checkpoint_dir=str(state_dir),
                backbones=encoder_choices(payload.get("backbones")),
            )
            return write_outputs(result, payload, final_dir)
    except Exception as exc:  # not BaseException: Tune ends a stopped trial with SystemExit
        reason = describe_out_of_memory(exc, memory_mb) or readable_error(exc)
    # Outside the except: the traceback's frames (tensors) are gone.
    release_accelerator_memory()
    raise TrialFailed(reason)


def train_trial(
    config: dict[str, Any],
    data: InStore | None = None,
    references: dict[int, Any] | None = None,
) -> None:
    """The Tune function trainable; wrap it with ``tune.with_parameters(data=InStore(<object ref
    of the dataset>), references={seed: <object ref or predictions>})`` and
    ``tune.with_resources``."""
    import ray
    from ray import tune

    payload: TrialPayload = config["trial"]
    if data is None:
        raise ValueError("data: the trainable needs the dataset (tune.with_parameters)")
    limit_threads(payload["threads"])
    with tempfile.TemporaryDirectory(prefix="synib-trial-") as work:
        state_dir, final_dir = Path(work) / "state", Path(work) / "final"
        state_dir.mkdir()
        final = restore_from(tune.get_checkpoint(), state_dir, final_dir)
        if final is None:  # not finished before Tune restored it
            final = run_fit(payload, ray.get(data.ref), references, state_dir, final_dir)
        tune.report(
            {**final["metrics"], "final": 1, "best_epoch": final["best_epoch"]},
            checkpoint=tune.Checkpoint.from_directory(str(final_dir)),
        )


def reference_predictions(
    knobs: dict[str, Any],
    data: MultimodalData,
    seed: int,
    threads: int,
    backbones: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Unimodal reference test predictions for one seed: modality -> (N_test,) int64;
    ``backbones``: as in the trial payload."""
    from synib_core.config import config_from_knobs
    from synib_core.training import train_references

    limit_threads(threads)
    try:
        refs = train_references(
            config_from_knobs(knobs), data, seed=seed, backbones=encoder_choices(backbones)
        )
    except Exception as exc:
        # The cause may not pickle (TrainingDiverged, KnobError): Ray would hand back its whole
        # remote traceback instead. The chain stays in the task's traceback, for the log.
        raise TrialFailed(readable_error(exc)) from exc
    return {m: np.asarray(p, dtype=np.int64) for m, p in refs.items()}
