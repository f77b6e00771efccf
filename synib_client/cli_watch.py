"""``synib watch``: one tqdm progress bar per trial, driven by the job's event stream.

Event data (infra/db/crud_jobs.py): ``status`` {status, failure_reason, progress, trials_done,
trials_total}; ``trial`` {id, trial_key, status, epochs_done, metrics, ...}; ``epoch``
{trial_id, trial_key, epoch, metrics}.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

from synib_client.client import Client
from synib_client.sse import RETRY_FOR_S

DEFAULT_EPOCHS = 30
TRIAL_DONE = frozenset({"succeeded", "failed", "cancelled", "stopped"})


def planned_epochs(spec: dict[str, Any]) -> int:
    """Epochs per trial from a job spec (``epochs``, else ``config.epochs``, else the default)."""
    config = spec.get("config") or {}
    epochs = spec.get("epochs") or config.get("epochs") or DEFAULT_EPOCHS
    return int(epochs)


class TrialBars:
    """Keeps a bar per trial id; each epoch moves its bar, the postfix shows epoch and val_acc."""

    def __init__(self, epochs: int, stream: TextIO) -> None:
        self._epochs, self._stream = epochs, stream
        self._bars: dict[str, tqdm[Any]] = {}

    def _bar(self, trial_id: str, label: str) -> tqdm[Any]:
        if trial_id not in self._bars:
            self._bars[trial_id] = tqdm(
                total=self._epochs,
                desc=label,
                unit="ep",
                file=self._stream,
                position=len(self._bars),
                leave=True,
                dynamic_ncols=True,
            )
        return self._bars[trial_id]

    def on_epoch(self, data: dict[str, Any]) -> None:
        bar = self._bar(str(data["trial_id"]), str(data.get("trial_key", data["trial_id"])))
        epoch = int(data.get("epoch", bar.n + 1))
        if epoch > bar.total:
            bar.total = epoch
        bar.update(max(0, epoch - bar.n))
        metrics = data.get("metrics") or {}
        postfix: dict[str, Any] = {"epoch": epoch}
        if isinstance(metrics.get("val_acc"), int | float):
            postfix["val_acc"] = round(float(metrics["val_acc"]), 4)
        bar.set_postfix(postfix)

    def on_trial(self, data: dict[str, Any]) -> None:
        bar = self._bar(str(data["id"]), str(data.get("trial_key", data["id"])))
        status = data.get("status")
        if status in TRIAL_DONE:
            if status == "succeeded":
                bar.total = bar.n  # early stopping (patience) can finish a trial before `epochs`
            metrics = data.get("metrics") or {}
            postfix: dict[str, Any] = {"status": status}
            if isinstance(metrics.get("test_acc"), int | float):
                postfix["test_acc"] = round(float(metrics["test_acc"]), 4)
            bar.set_postfix(postfix)
            bar.refresh()

    def write(self, text: str) -> None:
        tqdm.write(text, file=self._stream)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def watch_job(
    client: Client,
    job_id: str,
    stream: TextIO | None = None,
    *,
    retry_for: float = RETRY_FOR_S,
    command: str = "watch",
) -> int:
    """Follow a job to its end; 0 when it succeeded, 1 when it failed or was cancelled.

    An API restart or a database outage shorter than ``retry_for`` seconds is waited out, with
    one line on ``stream`` when the waiting starts and one when the API is back.
    """
    stream = stream or sys.stderr
    job = client.job(job_id)
    bars = TrialBars(planned_epochs(job.get("spec") or {}), stream)

    def on_event(_id: str | None, kind: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if kind == "epoch":
            bars.on_epoch(data)
        elif kind == "trial":
            bars.on_trial(data)
        elif kind == "status":
            done, total = data.get("trials_done", 0), data.get("trials_total", 0)
            bars.write(f"job {job_id}: {data.get('status')} ({done}/{total} trials)")

    try:
        final = client.wait(
            job_id,
            on_event,
            retry_for=retry_for,
            on_reconnect=lambda line: bars.write(f"synib {command}: {line}"),
        )
    finally:
        bars.close()
    status = final.get("status")
    if status == "succeeded":
        print(f"job {job_id} succeeded; see `synib report {job_id}`")
        return 0
    reason = f": {final['failure_reason']}" if final.get("failure_reason") else ""
    print(f"job {job_id} {status}{reason}", file=sys.stderr)
    return 1
