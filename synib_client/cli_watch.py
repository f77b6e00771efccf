"""``synib watch``: one progress bar per trial, driven by the job's event stream.

Event data (infra/db/crud_jobs.py): ``status`` {status, failure_reason, progress, trials_done,
trials_total}; ``trial`` {id, trial_key, status, epochs_done, metrics, ...}; ``epoch``
{trial_id, trial_key, epoch, metrics}.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from synib_client.client import Client
from synib_client.progress import BarBoard
from synib_client.sse import RETRY_FOR_S
from synib_spec.knobs import defaults

TRIAL_DONE = frozenset({"succeeded", "failed", "cancelled", "stopped"})


def planned_epochs(spec: dict[str, Any]) -> int:
    """Epochs per trial from a job spec (``epochs``, else ``config.epochs``, else the knob's
    default)."""
    config = spec.get("config") or {}
    epochs = spec.get("epochs") or config.get("epochs") or defaults()["epochs"]
    return int(epochs)


def _rounded(metrics: dict[str, Any], name: str) -> dict[str, float]:
    value = metrics.get(name)
    return {name: round(float(value), 4)} if isinstance(value, int | float) else {}


class TrialBars:
    """A bar per trial id; each epoch moves its bar, the postfix shows epoch and val_acc, and
    once the trial ends its status and test_acc."""

    def __init__(self, epochs: int, stream: TextIO) -> None:
        self._epochs = epochs
        self._board = BarBoard(stream)

    def on_epoch(self, data: dict[str, Any]) -> None:
        key = str(data["trial_id"])
        bar = self._board.bar(key, str(data.get("trial_key", key)), self._epochs)
        epoch = int(data.get("epoch", bar.done + 1))
        bar.total = max(bar.total, epoch)
        bar.done = max(bar.done, epoch)
        bar.postfix = {"epoch": epoch, **_rounded(data.get("metrics") or {}, "val_acc")}
        self._board.show(key)

    def on_trial(self, data: dict[str, Any]) -> None:
        key = str(data["id"])
        bar = self._board.bar(key, str(data.get("trial_key", key)), self._epochs)
        status = data.get("status")
        if status in TRIAL_DONE:
            if status == "succeeded":
                bar.total = bar.done  # early stopping (patience) can end a trial before `epochs`
            bar.postfix = {"status": status, **_rounded(data.get("metrics") or {}, "test_acc")}
            self._board.show(key)

    def write(self, text: str) -> None:
        self._board.write(text)


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

    final = client.wait(
        job_id,
        on_event,
        retry_for=retry_for,
        on_reconnect=lambda line: bars.write(f"synib {command}: {line}"),
    )
    status = final.get("status")
    if status == "succeeded":
        print(f"job {job_id} succeeded; see `synib report {job_id}`")
        return 0
    reason = f": {final['failure_reason']}" if final.get("failure_reason") else ""
    print(f"job {job_id} {status}{reason}", file=sys.stderr)
    return 1
